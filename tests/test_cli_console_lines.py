"""The console's pieces without a run: round lines for partly failed and failed rounds, warnings once, prints to the
full log line by line, and ms-swift's console left alone when LOG_LEVEL is set."""

import logging

import pytest

from swift_ext.federated import console


def round_row(loss):
    return {'round': 3, 'clients': [4, 17], 'loss': loss, 'seconds': 42.08}


def test_round_line_names_left_out_clients_and_failed_rounds():
    ok = {4: 'ok', 17: 'ok'}
    assert console.round_line(round_row(1.23456), 30, ok) == 'round 3/30: clients [4, 17], loss 1.2346, 42.1 s'
    assert console.round_line(round_row(1.23456), 30, ok, 0.5) == (
        'round 3/30: clients [4, 17], loss 1.2346, eval_loss 0.5000, 42.1 s'
    )
    assert console.round_line(round_row(1.0), 30, ok, None, {'epsilon': 2.4567}) == (
        'round 3/30: clients [4, 17], loss 1.0000, epsilon 2.46, 42.1 s'
    )
    assert console.round_line(round_row(1.0), 30, ok, None, {'epsilon': None}).endswith(', epsilon inf, 42.1 s')
    assert console.round_line(round_row(1.0), 30, {4: 'ok', 17: 'failed'}) == (
        'round 3/30: clients [4, 17] (17 failed), loss 1.0000, 42.1 s'
    )
    assert console.round_line(round_row(None), 30, {4: 'excluded', 17: 'failed'}) == (
        'round 3/30: clients [4, 17] (4 excluded, 17 failed), no update aggregated, global model unchanged, 42.1 s'
    )


def test_a_warning_passes_once_information_always():
    once = console.OncePerMessage()

    def record(level, message):
        return logging.LogRecord('swift', level, __file__, 1, message, None, None)

    passed = [once.filter(record(level, text)) for level, text in [
        (logging.WARNING, 'decord missing'), (logging.WARNING, 'decord missing'), (logging.ERROR, 'decord missing'),
        (logging.INFO, 'round 1'), (logging.INFO, 'round 1'), (logging.WARNING, 'other'),
    ]]  # fmt: skip
    assert passed == [True, False, False, True, True, True]


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_prints_go_to_the_log_line_by_line(monkeypatch):
    collect = Collect()
    host = logging.getLogger('swift')  # ms-swift's logger (not propagating once ms-swift is imported)
    monkeypatch.setattr(host, 'handlers', [collect])
    level = host.level
    host.setLevel(logging.INFO)
    try:
        with console.prints_to_run_log():
            print("{'loss': 1.5}", end='')
            print(', continued')
            print('second\n\nthird', end='')
    finally:
        host.setLevel(level)
    assert collect.messages == ["{'loss': 1.5}, continued", 'second', 'third']


@pytest.mark.parametrize('log_level, expected', [('', logging.WARNING), ('INFO', logging.INFO)])
def test_host_console_is_quieted_unless_log_level_is_set(monkeypatch, log_level, expected):
    host = logging.getLogger('swift')
    handler = logging.StreamHandler()
    handler.setLevel(logging.INFO)
    monkeypatch.setattr(host, 'handlers', [handler])
    monkeypatch.setenv('LOG_LEVEL', log_level)
    console.quiet_host_console()
    assert handler.level == expected


def test_display_path_is_relative_inside_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert console.display_path(str(tmp_path / 'output' / 'v0')) == 'output/v0'
    assert console.display_path('/elsewhere/v0') == '/elsewhere/v0'


def test_a_process_logs_to_one_run_log_at_a_time(tmp_path):
    first, second = (console.attach_run_log(str(tmp_path / name)) for name in ('first', 'second'))
    logging.getLogger('swift_ext.test').warning('after the second run started')
    loggers = [logging.getLogger(name) for name in (*console.HOST_LOGGERS, console.CONSOLE_LOGGER)]
    try:
        with open(second, encoding='utf-8') as f:
            assert 'after the second run started' in f.read()
        with open(first, encoding='utf-8') as f:
            assert 'after the second run started' not in f.read()
        for logger in loggers:
            assert [h.baseFilename for h in logger.handlers if getattr(h, 'swift_ext_run_log', False)] == [second]
    finally:
        for logger in loggers:
            for handler in [h for h in logger.handlers if getattr(h, 'swift_ext_run_log', False)]:
                logger.removeHandler(handler)
                handler.close()
