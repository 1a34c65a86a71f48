"""modules.dep parsing, load order, and modules.dep generation from .modinfo depends=."""

from __future__ import annotations

from pathlib import Path

import pytest

from rootfs_builder import kmod
from rootfs_builder.errors import BuildError
from support.rootfs import FAKE_MODULES, make_fake_kernel_dir


def test_load_order_puts_every_dependency_first() -> None:
    dependencies = kmod.parse_modules_dep(
        "a.ko: b.ko c.ko\n"  # depmod order: load c, then b, then a
        "b.ko: c.ko\n"
        "c.ko:\n"
        "d.ko: c.ko\n"
    )
    assert kmod.load_order_from(dependencies, ["a.ko", "d.ko"]) == ["c.ko", "b.ko", "a.ko", "d.ko"]


def test_load_order_reports_cycles_and_unknown_modules() -> None:
    with pytest.raises(BuildError, match="cycle"):
        kmod.load_order_from({"a.ko": ["b.ko"], "b.ko": ["a.ko"]}, ["a.ko"])
    with pytest.raises(BuildError, match="does not describe"):
        kmod.load_order_from({"a.ko": ["gone.ko"]}, ["a.ko"])


def test_module_names_ignore_compression_suffix_and_dashes() -> None:
    assert kmod.module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert kmod.module_name("kernel/a/virtio_blk.ko.zst") == "virtio_blk"


def test_generated_modules_dep_matches_the_hand_written_one(tmp_path: Path, c_build_dir: Path) -> None:
    kernel = make_fake_kernel_dir(tmp_path / "k", c_build_dir)
    modules = kernel / "modules"
    expected = kmod.parse_modules_dep((modules / "modules.dep").read_text())
    generated = kmod.parse_modules_dep(kmod.compute_modules_dep(modules))
    assert set(generated) == set(expected)
    for module, dependencies in expected.items():
        assert set(generated[module]) == set(dependencies), module
        order = kmod.load_order_from(generated, [module])
        assert order[-1] == module and set(order[:-1]) == set(dependencies)


def test_resolve_load_order_for_virtio_and_builtin(tmp_path: Path, c_build_dir: Path) -> None:
    kernel = make_fake_kernel_dir(tmp_path / "k", c_build_dir)
    (kernel / "modules/modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    order, builtin = kmod.resolve_load_order(kernel / "modules", ["virtio_net", "virtio-pci", "virtio_blk"])
    assert builtin == ["virtio_pci"]
    position = {path: index for index, path in enumerate(order)}
    for name in ("virtio_net", "virtio_blk"):
        relative, _ = FAKE_MODULES[name]
        for dependency in kmod.parse_modules_dep((kernel / "modules/modules.dep").read_text())[relative]:
            assert position[dependency] < position[relative]
    with pytest.raises(BuildError, match="no module 'virtio_gpu'"):
        kmod.resolve_load_order(kernel / "modules", ["virtio_gpu"])


def test_compressed_modules_are_read_decompressed(tmp_path: Path, c_build_dir: Path) -> None:
    import lzma

    kernel = make_fake_kernel_dir(tmp_path / "k", c_build_dir)
    plain = kernel / "modules" / FAKE_MODULES["virtio"][0]
    packed = plain.with_suffix(".ko.xz")
    packed.write_bytes(lzma.compress(plain.read_bytes(), format=lzma.FORMAT_XZ))
    assert kmod.read_module(packed) == plain.read_bytes()
    assert kmod.modinfo(kmod.read_module(packed))["depends"] == "virtio_ring"
