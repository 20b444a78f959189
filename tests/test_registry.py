import pytest

from rcskd.errors import ConfigError
from rcskd.registry import SOURCES, Registry


def test_register_build_and_list():
    reg = Registry("widget")

    @reg.register("b")
    def make_b(x):
        return ("b", x)

    reg.register("a")(lambda: "a")
    assert reg.names() == ["a", "b"]
    assert reg.build("b", 3) == ("b", 3)
    assert "a" in reg and "c" not in reg


def test_unknown_name_lists_known_ones():
    reg = Registry("widget")
    reg.register("alpha")(object)
    with pytest.raises(ConfigError, match=r"unknown widget 'beta'; known: alpha"):
        reg.get("beta")


def test_double_registration_is_refused():
    reg = Registry("widget")
    reg.register("a")(object)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(object)


def test_all_five_sources_are_registered():
    import rcskd.data.sources  # noqa: F401

    assert SOURCES.names() == ["cifar100", "dicom", "figshare_mat", "imagefolder", "phantom"]


def test_prefix_family_builds_any_member_by_suffix():
    reg = Registry("widget")
    reg.register("plain")(object)

    @reg.register_prefix("ext.")
    def make_ext(name, size=1):
        return (name, size)

    assert reg.build("ext.thing", size=3) == ("thing", 3)
    assert "ext.other" in reg and "ext." not in reg
    assert reg.names() == ["plain"]  # families are not enumerated
    with pytest.raises(ConfigError, match=r"known: plain, ext\.<name>"):
        reg.get("nope")
