"""Every preset of the verbs has one shape: the main job, the speedrun recipes and each
reproduction protocol are Presets whose settings build a valid TrainConfig."""

from __future__ import annotations

import dataclasses

import pytest

from globalpool.experiment.claims import CLAIMS
from globalpool.experiment.compare import COMPARE_DEFAULTS, default_compare_config
from globalpool.train import TrainConfig
from globalpool.train.presets import MAIN_JOB, RECIPES, Preset

ALL = [MAIN_JOB, *RECIPES.values()] + [p for c in CLAIMS.values() for p in c.settings.values()]


@pytest.mark.parametrize("preset", ALL, ids=lambda p: p.name)
def test_every_preset_is_one_shape_and_builds_a_valid_config(preset):
    assert isinstance(preset, Preset) and preset.summary
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(preset.settings) <= names, set(preset.settings) - names
    config = preset.config(seed=5)
    assert config.seed == 5
    for key, value in preset.settings.items():
        assert getattr(config, key) == (tuple(value) if key == "betas" else value), key


def test_preset_names_are_unique_and_claims_name_their_protocols():
    assert len({p.name for p in ALL}) == len(ALL)
    for claim in CLAIMS.values():
        for protocol, preset in claim.settings.items():
            assert preset.name == f"{claim.name}:{protocol}"


def test_compare_trains_the_main_job_preset():
    assert COMPARE_DEFAULTS is MAIN_JOB.settings
    assert default_compare_config() == MAIN_JOB.config()
