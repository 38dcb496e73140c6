"""The model repository on disk: names, version policies, what counts as a version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.bundle.format import BundleError
from service.engine.admission import InvalidName, UnknownModel
from service.engine.repository import (
    Verifier,
    VersionPolicy,
    check_name,
    check_version,
    choose_default,
    read_model_dir,
    scan,
    single_model_dir,
)
from tests.conftest import SHIPPED_VERSION, publish


@pytest.mark.parametrize("name", ["sentiment", "a.b-c_1", "X", "..x", ".hidden"])
def test_names_that_are_one_safe_path_segment(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/etc", "a b", "é", "a\\b", "a%2Fb", "x\x00"])
def test_names_that_could_reach_outside_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)


def test_versions_are_positive_integers_written_as_such() -> None:
    assert check_version("3") == 3
    for bad in ("0", "-1", "x", "", "1.0", "99999999999999999999"):
        with pytest.raises(InvalidName):
            check_version(bad)
    with pytest.raises(UnknownModel):
        check_version("01")


@pytest.mark.parametrize(
    ("config", "available", "served"),
    [
        ({}, [1, 2, 3], [3]),
        ({"version_policy": {"latest": {"num_versions": 2}}}, [1, 3, 2], [3, 2]),
        ({"version_policy": {"all": {}}}, [2, 1], [2, 1]),
        ({"version_policy": {"specific": {"versions": [1, 3]}}}, [1, 2, 3], [3, 1]),
        ({"version_policy": {"specific": {"versions": [4]}}}, [1, 2], []),
    ],
)
def test_version_policies_choose_as_triton_does(config: dict[str, object], available: list[int], served: list[int]) -> None:
    assert VersionPolicy.parse(config).choose(available) == served


@pytest.mark.parametrize(
    "config",
    [
        [], {"version_policy": {}}, {"version_policy": {"latest": {"num_versions": 0}}},
        {"version_policy": {"latest": {}}}, {"version_policy": {"all": {"x": 1}}},
        {"version_policy": {"specific": {"versions": []}}}, {"version_policy": {"specific": {"versions": [True]}}},
        {"version_policy": {"newest": {}}}, {"other": 1},
    ],
)
def test_bad_policies_are_refused_with_the_reason(config: object) -> None:
    with pytest.raises(ValueError, match=r"version|config"):
        VersionPolicy.parse(config)


def test_a_bad_config_json_makes_only_that_model_unavailable(tmp_path: Path, shipped_bundle_dir: Path) -> None:
    for name in ("good", "bad"):
        (tmp_path / name).mkdir()
        publish(shipped_bundle_dir, tmp_path / name, 1)
    (tmp_path / "bad" / "config.json").write_text("{not json")
    (tmp_path / "stray.txt").write_text("not a model")
    (tmp_path / ".hidden").mkdir()
    models = scan(tmp_path)
    assert sorted(models) == ["bad", "good"]
    assert models["good"].policy == VersionPolicy() and models["good"].config_problem is None
    assert models["bad"].policy is None and "config.json" in (models["bad"].config_problem or "")
    assert sorted(models["good"].versions) == [1]


def test_only_canonical_numeric_directories_are_versions(tmp_path: Path) -> None:
    for name in ("1", "02", "0", "x", ".staging-3", "10"):
        (tmp_path / name).mkdir()
    assert sorted(read_model_dir(tmp_path).versions) == [1, 10]


def test_a_version_counts_once_it_verifies_and_a_copy_in_progress_is_not_judged(
    tmp_path: Path, shipped_bundle_dir: Path
) -> None:
    verifier = Verifier()
    target = tmp_path / "2"
    target.mkdir()
    assert verifier.check(target, 2) is None  # no manifest yet: not a version
    shutil.copy(shipped_bundle_dir / "manifest.json", target / "manifest.json")
    first = verifier.check(target, 2)
    assert first is not None and first.problem and not first.settled  # files missing: maybe still copying
    again = verifier.check(target, 2)
    assert again is not None and again.problem and again.settled and again.reason == "checksum"
    shutil.rmtree(target)
    publish(shipped_bundle_dir, tmp_path, 2)
    done = verifier.check(target, 2)
    assert done is not None and done.problem is None  # the directory changed: looked at afresh


def test_a_version_in_the_wrong_directory_does_not_count(tmp_path: Path, shipped_bundle_dir: Path) -> None:
    shutil.copytree(shipped_bundle_dir, tmp_path / "7")  # its manifest says the shipped version
    check = Verifier().check(tmp_path / "7", 7)
    assert check is not None and f"manifest says version {SHIPPED_VERSION}" in (check.problem or "")


def test_the_default_model_is_named_when_there_are_several() -> None:
    assert choose_default(["only"], None) == "only"
    assert choose_default(["a", "b"], "b") == "b"
    with pytest.raises(BundleError, match="TEXTSERVE_DEFAULT_MODEL"):
        choose_default(["a", "b"], None)
    with pytest.raises(BundleError, match="not among"):
        choose_default(["a", "b"], "c")


def test_model_path_serves_its_newest_version_only(tmp_path: Path, shipped_bundle_dir: Path) -> None:
    publish(shipped_bundle_dir, tmp_path, 1)
    publish(shipped_bundle_dir, tmp_path, 3)
    model = single_model_dir(tmp_path)
    assert model.name == "sentiment" and list(model.versions) == [3]
    assert list(single_model_dir(tmp_path / "1").versions) == [1]
