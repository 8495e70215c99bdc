"""Job logs: a failure is in the log file with its cause; a clean exit is not a failure."""

from __future__ import annotations

import logging

import pytest

from flowsim.logs import job_logging


def test_an_exception_is_logged_with_its_traceback_and_reraised(tmp_path):
    log = tmp_path / "logs" / "job.log"
    with pytest.raises(ValueError, match="bad bins"), job_logging(log):
        logging.getLogger("flowsim.test").info("epoch 1")
        raise ValueError("bad bins")
    text = log.read_text()
    assert "INFO" in text and "epoch 1" in text
    assert "job failed" in text and "Traceback" in text and "ValueError: bad bins" in text


@pytest.mark.parametrize("code", [None, 0])
def test_a_clean_exit_is_not_logged_as_a_failure(tmp_path, code):
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit), job_logging(log):
        raise SystemExit(code)
    assert "failed" not in log.read_text()


def test_an_exit_with_a_message_logs_the_message_without_a_traceback(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit), job_logging(log):
        raise SystemExit("overlay x.yaml: config key 'training.max_epoch': not a training setting")
    text = log.read_text()
    assert "ERROR" in text and "job failed: overlay x.yaml: config key 'training.max_epoch'" in text
    assert "Traceback" not in text


def test_the_previous_handlers_and_level_come_back(tmp_path):
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    with job_logging(tmp_path / "job.log", level=logging.DEBUG):
        assert root.level == logging.DEBUG
    assert (root.level, list(root.handlers)) == before
