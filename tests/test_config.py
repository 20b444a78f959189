import re
from pathlib import Path

import pytest

from rcskd.config import Params, flatten, load_params, params_from_dict
from rcskd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_yaml_is_valid_and_matches_defaults():
    import dataclasses

    from rcskd.distill import check_methods, method_terms

    params = load_params(REPO / "params.yaml")
    # params.yaml documents exactly the defaults; the distillation methods are data that only
    # params.yaml lists, and each term's settings there are its loss's declared defaults
    distill = dataclasses.replace(
        params.distill, methods=Params().distill.methods, baselines=Params().distill.baselines
    )
    assert dataclasses.replace(params, distill=distill) == Params()
    check_methods(params.distill)
    for method, terms in params.distill.methods.items():
        for term, (name, settings) in zip(
            method_terms(method, params.distill), terms.items(), strict=True
        ):
            defaults = type(term.config)()
            for key, value in settings.items():
                assert getattr(defaults, key) == value, f"distill.methods.{method}.{name}.{key}"


def test_baselines_must_be_methods():
    with pytest.raises(ConfigError, match=r"'distill\.baselines': 'kdd'; allowed: a method"):
        params_from_dict({"distill": {"baselines": ["kdd"]}})


def test_missing_keys_take_defaults():
    params = params_from_dict({"prepare": {"image_size": 32}})
    assert params.prepare.image_size == 32
    assert params.prepare.channels == 1
    assert params.data.source == "phantom"


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({"data": {"sorce": "phantom"}}, ["'data.sorce'", "source, root"]),
        ({"colour": 1}, ["'colour'", "seed, data, prepare"]),
        ({"data": {"source": "kaggle"}}, ["'data.source'", "'kaggle'", "phantom | imagefolder"]),
        ({"prepare": {"image_size": 4}}, ["'prepare.image_size'", "4", "in [8, 1024]"]),
        ({"prepare": {"channels": 2}}, ["'prepare.channels'", "2", "1 | 3"]),
        ({"prepare": {"val_fraction": "0.1"}}, ["'prepare.val_fraction'", "'0.1'", "a number"]),
        ({"prepare": {"crop_border": "yes"}}, ["'prepare.crop_border'", "true | false"]),
        ({"seed": 1.5}, ["'seed'", "1.5", "an integer"]),
        ({"data": {"classes": "glioma"}}, ["'data.classes'", "a list of str"]),
        ({"data": {"phantom": {"difficulty": 2}}}, ["'data.phantom.difficulty'", "in [0.0, 1.0]"]),
        ({"data": {"phantom": 3}}, ["'data.phantom'", "a mapping"]),
    ],
)
def test_bad_params_name_key_value_and_what_is_allowed(raw, fragments):
    with pytest.raises(ConfigError) as err:
        params_from_dict(raw, source="p.yaml")
    message = str(err.value)
    assert message.startswith("p.yaml: ")
    for fragment in fragments:
        assert fragment in message


def test_bool_is_not_accepted_as_a_number():
    with pytest.raises(ConfigError, match="'seed'"):
        params_from_dict({"seed": True})


def test_int_is_accepted_for_float_and_converted():
    params = params_from_dict({"prepare": {"val_fraction": 0}})
    assert params.prepare.val_fraction == 0.0
    assert isinstance(params.prepare.val_fraction, float)


def test_load_params_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)


def test_flatten_gives_dotted_keys():
    flat = flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}})
    assert flat == {"a.b": 1, "a.c.d": "[1, 2]", "e": "{}"}


@pytest.mark.parametrize(
    "raw, meant",
    [
        ({"teacher": {"epoch": 3}}, "teacher.train.epochs"),
        ({"prune": {"budgett": 0.3}}, "prune.budget"),
        ({"prepare": {"image_sise": 32}}, "prepare.image_size"),
    ],
)
def test_an_unknown_key_suggests_the_key_it_most_likely_meant(raw, meant):
    with pytest.raises(ConfigError, match=f"; did you mean '{re.escape(meant)}'\\?$"):
        params_from_dict(raw)


def test_no_suggestion_for_a_key_like_nothing_known():
    with pytest.raises(ConfigError) as info:
        params_from_dict({"teacher": {"train": {"zzz": 1}}})
    assert "did you mean" not in str(info.value)
