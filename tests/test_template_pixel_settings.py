"""A run's recorded image-resolution settings (swift_ext.template.pixel_settings): written from the environment,
read back, merged with --max_pixels/--min_pixels, and put into an environment exactly (unset stays unset)."""

import json

import pytest

from swift_ext.template.pixel_settings import (
    PIXEL_ENV_VARS,
    PixelSettingsError,
    apply_pixel_settings,
    describe,
    pixel_settings_for_runs,
    read_pixel_settings,
    record_pixel_settings,
)

TRAINING_ENV = {'MAX_PIXELS': '602112', 'IMAGE_MAX_TOKEN_NUM': '768', 'PATH': '/bin'}


def recorded_run(tmp_path, name: str, environ: dict) -> str:
    run = tmp_path / name
    run.mkdir()
    record_pixel_settings(str(run), environ=environ)
    return str(run)


def test_record_then_read_gives_every_variable_set_or_unset(tmp_path):
    run = recorded_run(tmp_path, 'v0', TRAINING_ENV)
    written = json.loads((tmp_path / 'v0' / 'pixel_settings.json').read_text())
    assert written == {name: TRAINING_ENV.get(name) for name in PIXEL_ENV_VARS}  # PATH is no pixel setting
    assert read_pixel_settings(run) == written
    assert read_pixel_settings(str(tmp_path)) is None  # no record


def test_a_broken_record_names_the_file(tmp_path):
    (tmp_path / 'pixel_settings.json').write_text('{"MAX_PIXELS": 602112}')
    with pytest.raises(PixelSettingsError, match=r'pixel_settings.json: expected .* got MAX_PIXELS=602112'):
        read_pixel_settings(str(tmp_path))
    (tmp_path / 'pixel_settings.json').write_text('{"MAX_PIXELS": ')
    with pytest.raises(PixelSettingsError, match='pixel_settings.json: not JSON'):
        read_pixel_settings(str(tmp_path))


def test_options_override_the_record_and_clear_the_token_count_derived_from_it(tmp_path):
    run = recorded_run(tmp_path, 'v0', TRAINING_ENV)
    assert pixel_settings_for_runs([run]) == read_pixel_settings(run)
    settings = pixel_settings_for_runs([run], {'max_pixels': 50176, 'min_pixels': None})
    assert (settings['MAX_PIXELS'], settings['IMAGE_MAX_TOKEN_NUM'], settings['MIN_PIXELS']) == ('50176', None, None)
    with pytest.raises(PixelSettingsError, match='--max_pixels 0: a number of pixels must be positive'):
        pixel_settings_for_runs([run], {'max_pixels': 0})


def test_runs_at_different_resolutions_cannot_be_evaluated_together(tmp_path):
    first = recorded_run(tmp_path, 'v0', TRAINING_ENV)
    same = recorded_run(tmp_path, 'v1', TRAINING_ENV)
    other = recorded_run(tmp_path, 'v2', {'MAX_PIXELS': '50176'})
    assert pixel_settings_for_runs([first, same, str(tmp_path)]) == read_pixel_settings(first)
    with pytest.raises(PixelSettingsError, match='v0 and .*v2 were trained at different image resolutions'):
        pixel_settings_for_runs([first, other])


def test_without_a_record_the_environment_applies(tmp_path, monkeypatch):
    for name in PIXEL_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('MIN_PIXELS', '3136')
    assert describe(pixel_settings_for_runs([str(tmp_path)])) == 'MIN_PIXELS=3136'


def test_apply_sets_the_recorded_values_and_unsets_the_rest(tmp_path):
    environ = {'MAX_PIXELS': '1003520', 'MIN_PIXELS': '3136', 'HOME': '/root'}
    apply_pixel_settings(read_pixel_settings(recorded_run(tmp_path, 'v0', TRAINING_ENV)), environ)
    assert environ == {'MAX_PIXELS': '602112', 'IMAGE_MAX_TOKEN_NUM': '768', 'HOME': '/root'}
