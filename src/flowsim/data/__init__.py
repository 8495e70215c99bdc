"""HIGGS data: the file layout, reading and validation, the toy generator, splits and scaling."""
