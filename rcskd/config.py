"""Typed, validated view of params.yaml: one frozen dataclass per section.

`load_params(path)` fails with a `ConfigError` that names the file, the dotted key, the bad value
and what is allowed, so a typo in `dvc exp run -S ...` is caught before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rcskd.config_keys import did_you_mean
from rcskd.errors import ConfigError


def bounds(lo: float | None = None, hi: float | None = None) -> dict[str, float | None]:
    """Field metadata: inclusive bounds checked by the loader."""
    return {"min": lo, "max": hi}


DEFAULT_ALIASES: dict[str, str] = {
    "glioma_tumor": "glioma", "meningioma_tumor": "meningioma", "pituitary_tumor": "pituitary",
    "pituitary_adenoma": "pituitary", "no_tumor": "notumor", "no_tumour": "notumor",
    "normal": "notumor", "healthy": "notumor",
}  # fmt: skip


@dataclass(frozen=True)
class PhantomConfig:
    """The embedded synthetic brain-MRI dataset."""

    patients: int = field(default=1000, metadata=bounds(1))
    slices_per_patient: int = field(default=2, metadata=bounds(1, 64))
    size: int = field(default=128, metadata=bounds(16, 1024))
    difficulty: float = field(default=0.0, metadata=bounds(0.0, 1.0))


@dataclass(frozen=True)
class FigshareConfig:
    """Jun Cheng's Brain-3 `.mat` files."""

    cvind: str = ""  # path to cvind.mat (5-fold patient split); empty: split by patient ourselves
    test_fold: int = field(default=1, metadata=bounds(1, 5))


@dataclass(frozen=True)
class DicomConfig:
    """How DICOM pixel values become 8-bit images."""

    window: Literal["auto", "minmax", "fixed"] = "auto"
    center: float = 40.0
    width: float = field(default=400.0, metadata=bounds(1e-6))


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data comes from and how it is read."""

    source: Literal["phantom", "imagefolder", "figshare_mat", "cifar100", "dicom"] = "phantom"
    root: str = "rcskd/data/sources/phantom.py"
    classes: list[str] = field(default_factory=list)
    class_aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    on_bad_file: Literal["error", "skip"] = "error"
    phantom: PhantomConfig = field(default_factory=PhantomConfig)
    figshare_mat: FigshareConfig = field(default_factory=FigshareConfig)
    dicom: DicomConfig = field(default_factory=DicomConfig)


@dataclass(frozen=True)
class DedupConfig:
    """Cross-split duplicate removal."""

    near_threshold: int = field(default=6, metadata=bounds(-1, 64))  # pHash bits; -1: off
    near_min_correlation: float = field(default=0.95, metadata=bounds(-1.0, 1.0))
    policy: Literal["drop_from_train", "fail"] = "drop_from_train"


@dataclass(frozen=True)
class PrepareConfig:
    """Splitting, resizing and caching."""

    image_size: int = field(default=64, metadata=bounds(8, 1024))
    channels: Literal[1, 3] = 1
    crop_border: bool = True  # crop dark frames (MRI/CT); set false for natural images (CIFAR)
    val_fraction: float = field(default=0.15, metadata=bounds(0.0, 0.9))
    test_fraction: float = field(default=0.2, metadata=bounds(0.0, 0.9))
    # each class needs at least this many images in each of train, val and test, or prepare stops
    min_images_per_class: int = field(default=2, metadata=bounds(1, 1_000_000))
    dedup: DedupConfig = field(default_factory=DedupConfig)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation suited to grey MRI: geometry and intensity, no colour operations."""

    hflip: float = field(default=0.5, metadata=bounds(0.0, 1.0))  # probability
    vflip: float = field(default=0.0, metadata=bounds(0.0, 1.0))  # probability
    rotate_deg: float = field(default=10.0, metadata=bounds(0.0, 180.0))  # uniform +-
    translate: float = field(default=0.05, metadata=bounds(0.0, 0.5))  # fraction of the size, +-
    scale: float = field(default=0.1, metadata=bounds(0.0, 0.5))  # zoom 1 +- scale
    brightness: float = field(default=0.1, metadata=bounds(0.0, 1.0))  # additive, +-
    contrast: float = field(default=0.15, metadata=bounds(0.0, 1.0))  # multiplicative, 1 +-
    gamma: float = field(default=0.15, metadata=bounds(0.0, 1.0))  # exponent exp(+-gamma)


@dataclass(frozen=True)
class MixConfig:
    """Batch mixing on the device: mixup or CutMix, lambda ~ Beta(alpha, alpha) per batch (alpha
    1: U(0, 1)), labels mixed in the same proportion, seeded like the other augmentation."""

    mode: Literal["none", "mixup", "cutmix", "both"] = "none"  # both: one of the two per batch
    alpha: float = field(default=1.0, metadata=bounds(0.01, 100.0))
    prob: float = field(default=1.0, metadata=bounds(0.0, 1.0))  # share of batches mixed


@dataclass(frozen=True)
class TrainConfig:
    """One training run (teacher, fine-tune or distillation): the loop's knobs."""

    epochs: int = field(default=30, metadata=bounds(0))  # 0: the phase is skipped
    batch_size: int = field(default=64, metadata=bounds(1))
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = field(default=0.002, metadata=bounds(0.0))
    momentum: float = field(default=0.9, metadata=bounds(0.0, 1.0))  # SGD only
    weight_decay: float = field(default=0.05, metadata=bounds(0.0))
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = field(default=1.0, metadata=bounds(0.0))  # linear warm-up from lr/10
    step_every: int = field(default=10, metadata=bounds(1))  # step schedule: epochs per decay
    step_gamma: float = field(default=0.1, metadata=bounds(0.0, 1.0))  # step schedule: factor
    label_smoothing: float = field(default=0.0, metadata=bounds(0.0, 0.5))
    balanced_sampling: bool = False  # draw classes equally often (with replacement)
    monitor: Literal["acc", "balanced_acc", "loss"] = "balanced_acc"  # picks the best epoch
    early_stopping: int = field(default=0, metadata=bounds(0))  # patience in epochs; 0 = off
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mix: MixConfig = field(default_factory=MixConfig)  # off by default
    # auto: bf16 where the hardware has it natively (Ampere+ GPUs, CPUs with AVX512-BF16/AMX),
    # fp16 with a GradScaler on older GPUs, fp32 on other CPUs (rcskd/train/runtime.py)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # auto: channels-last on CUDA and AVX512 CPUs, where convolutions run faster in it
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    compile: bool = False  # torch.compile the model (CUDA; slower start, faster steps)
    # auto: the prepared uint8 cache moves to the training device once when it fits in a quarter
    # of its free memory (always on CPU); else batches are copied from pinned memory
    data_on_device: Literal["auto", "always", "never"] = "auto"
    log_every: int = field(default=50, metadata=bounds(1))  # steps between progress updates


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher: architecture and its training."""

    arch: str = "resnet18"  # a zoo name (rcskd info) or torchvision.<name> where it imports
    width: float = field(default=0.5, metadata=bounds(0.01, 4.0))  # channel multiplier
    pretrained: str = ""  # local torchvision-format state_dict; "" = from scratch
    train: TrainConfig = field(default_factory=TrainConfig)
    # a second phase from the first phase's best weights (e.g. a short AdamW fine-tune with a
    # fresh cosine cycle, which lifted the Brain-4 teacher); epochs 0 = one phase only
    refine: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=0, lr=5e-4, warmup_epochs=0.0)
    )


@dataclass(frozen=True)
class ProxyConfig:
    """How a pruning candidate is scored without training it (adaptive BN + held-out data)."""

    data: Literal["train", "val"] = "train"  # scoring images: held out of train, or validation
    calib_images: int = field(default=256, metadata=bounds(1))  # BN recalibration images
    eval_images: int = field(default=512, metadata=bounds(1))  # scoring images (held out of train)
    finetune_top_k: int = field(default=0, metadata=bounds(0))  # re-rank the k best after a short
    finetune_steps: int = field(default=30, metadata=bounds(1))  # fine-tune of this many steps


@dataclass(frozen=True)
class AgentConfig:
    """The DDPG agent (stable-baselines3) that picks one ratio per unit, and the search budget.

    Learning that works on a sparse end-of-episode reward (AMC-style): Monte-Carlo targets (every
    step's target is its episode's reward), the reward centred on a moving average and scaled by
    a moving deviation, a slower actor than critic, many updates per episode, and truncated-normal
    exploration noise on the action's own [0, 1] scale, none during the random warm-up.
    """

    episodes: int = field(default=60, metadata=bounds(1))  # candidates evaluated, warm-up included
    warmup_episodes: int = field(default=15, metadata=bounds(0))  # random episodes first
    noise_sigma: float = field(default=0.2, metadata=bounds(0.0))  # on the 0..1 action scale
    noise_decay: float = field(default=0.95, metadata=bounds(0.0, 1.0))  # per episode after warm-up
    actor_lr: float = field(default=1e-4, metadata=bounds(0.0))
    critic_lr: float = field(default=1e-3, metadata=bounds(0.0))
    updates_per_episode: int = field(default=64, metadata=bounds(1))  # gradient steps
    reward_decay: float = field(default=0.95, metadata=bounds(0.0, 1.0))  # moving-average baseline
    hidden: int = field(default=64, metadata=bounds(1))  # units per hidden layer (2 layers)
    batch_size: int = field(default=64, metadata=bounds(1))
    tau: float = field(default=0.01, metadata=bounds(0.0, 1.0))  # soft target update
    cem_population: int = field(default=10, metadata=bounds(2))  # CEM: candidates per round
    cem_elite: float = field(default=0.2, metadata=bounds(0.01, 1.0))  # CEM: share kept


@dataclass(frozen=True)
class LatencyTableConfig:
    """How the per-block latency table of `prune.resource: latency` is measured (eager PyTorch
    on the CPU of the machine that runs the stage)."""

    batch_size: int = field(default=1, metadata=bounds(1))
    threads: int = field(default=1, metadata=bounds(1))
    repeats: int = field(default=20, metadata=bounds(1))  # timed runs per entry (median)


@dataclass(frozen=True)
class PruneConfig:
    """LPB-RL: per-block pruning ratios under a resource budget, then a short fine-tune."""

    budget: float = field(default=0.2, metadata=bounds(0.01, 1.0))  # share of the teacher kept
    # what the budget counts: parameters, FLOPs, or milliseconds (the measured latency table)
    resource: Literal["params", "flops", "latency"] = "params"
    max_ratio: float = field(default=0.9, metadata=bounds(0.0, 0.99))  # most a unit may lose
    granularity: Literal["block", "stage"] = "block"  # one ratio per block, or per stage
    importance: Literal["l2", "taylor", "bn_scale"] = "l2"  # which channels go
    round_to: int = field(default=1, metadata=bounds(1))  # kept channels: a multiple of this
    search: Literal["ddpg", "cem", "random", "uniform"] = "ddpg"  # whose ratios the student gets
    # also run the other searches (CEM, random), same number of evaluations; uniform always runs
    compare_baselines: bool = False
    search_seed: int = field(default=-1, metadata=bounds(-1))  # -1: the global seed
    reward: Literal["accuracy", "error_log_resource"] = "accuracy"
    # FLOPs-aware search: a candidate keeping more than this share of the teacher's FLOPs loses
    # the excess from its reward (1.0 = no FLOPs constraint beside the `resource` budget)
    flops_budget: float = field(default=1.0, metadata=bounds(0.01, 1.0))
    latency_table: LatencyTableConfig = field(default_factory=LatencyTableConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    # short: recovering from pruning is the distillation stages' job (ce_only measures it)
    finetune: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=1, lr=5e-4, warmup_epochs=0.0)
    )


@dataclass(frozen=True)
class LatencyConfig:
    """CPU latency measurement."""

    threads: int = field(default=2, metadata=bounds(1))
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    repeats: int = field(default=10, metadata=bounds(1))  # timed runs; the median is reported
    warmup: int = field(default=3, metadata=bounds(0))


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluate stage: clinical metrics, calibration, complexity, Grad-CAM."""

    batch_size: int = field(default=128, metadata=bounds(1))
    bootstrap: int = field(default=1000, metadata=bounds(0))  # resamples for the 95% interval
    ece_bins: int = field(default=15, metadata=bounds(1))
    gradcam_per_class: int = field(default=2, metadata=bounds(0))  # test images per class
    gradcam_tap: str = "stage3"  # named tap; "" = the last spatial tap
    latency: LatencyConfig = field(default_factory=LatencyConfig)


# A distillation method as data: loss term name -> that term's settings (its weight and the
# loss's own keys; omitted keys take the defaults declared beside the loss in
# rcskd/distill/losses/). Validated against the loss registry by rcskd.distill.methods.
Method = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class DistillConfig:
    """Distillation stages: shared training settings, the methods as data, the baselines."""

    ce_weight: float = field(default=1.0, metadata=bounds(0.0))
    # The methods run as baseline stages (one DVC stage each), all from the pruned weights.
    baselines: list[str] = field(default_factory=list)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=3, lr=5e-4, warmup_epochs=0.0)
    )
    # RC-SKD's own stages are the methods `tkd_ca` and `dkd_sg` (in that order).
    methods: dict[str, Method] = field(
        default_factory=lambda: {"tkd_ca": {"tkd_ca": {}}, "dkd_sg": {"dkd_sg": {}}}
    )


@dataclass(frozen=True)
class ExportConfig:
    """The export stage: the final student as FP32 ONNX + TorchScript and as INT8 ONNX."""

    opset: int = field(default=18, metadata=bounds(11, 30))
    int8: bool = True  # also quantise to INT8 with ONNX Runtime (evaluated like every model)
    int8_mode: Literal["static", "dynamic"] = "static"  # static: calibrated activations
    max_int8_drop: float = field(default=0.01, metadata=bounds(0.0, 1.0))  # fail past this
    calibration_images: int = field(default=256, metadata=bounds(1))  # training images only
    latency_repeats: int = field(default=30, metadata=bounds(1))  # interleaved timed runs


@dataclass(frozen=True)
class DistributedConfig:
    """Data-parallel training over several processes (GPUs or CPU processes) with torchrun."""

    # > 1: the training stages relaunch themselves with PyTorch's elastic launcher, one process
    # per GPU (or CPU process with gloo); under `torchrun` the launcher's world size is used
    nproc_per_node: int = field(default=1, metadata=bounds(1))
    sync_batchnorm: bool = False  # batch statistics over all processes (SyncBatchNorm)


@dataclass(frozen=True)
class Params:
    """All of params.yaml."""

    seed: int = field(default=0, metadata=bounds(0))
    data: DataConfig = field(default_factory=DataConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; missing keys take their defaults."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: Any, source: str = "params") -> Params:
    """Validate a plain mapping (as read from YAML) into `Params`."""
    params = _build(Params, raw, prefix="", source=source)
    missing = [m for m in params.distill.baselines if m not in params.distill.methods]
    if missing:
        raise _fail(
            source, "distill.baselines", missing[0],
            f"a method defined in distill.methods ({', '.join(params.distill.methods)})",
        )  # fmt: skip
    return params


def parse_section(cls: type, raw: Any, key: str, source: str = "params") -> Any:
    """Validate the mapping `raw` found at dotted `key` into the dataclass `cls`."""
    return _build(cls, raw, prefix=f"{key}.", source=source)


def as_dict(obj: Any) -> dict[str, Any]:
    """A section as a plain nested dict (for logging and writing back)."""
    return dataclasses.asdict(obj)


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b.c': value}; lists and dicts of scalars become strings."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list | dict):
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def _fail(source: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{source}: bad value for '{key}': {value!r}; allowed: {allowed}")


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    section = prefix.rstrip(".") or "(top level)"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail(source, section, raw, f"a mapping with keys {_names(cls)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        hint = did_you_mean(f"{prefix}{unknown[0]}", Params)
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; allowed in {section}: {_names(cls)}"
            + (f"; did you mean '{hint}'?" if hint else "")
        )
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{prefix}{name}", source, fields[name])
    return cls(**values)


def _names(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _coerce(tp: Any, value: Any, key: str, source: str, fld: dataclasses.Field) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", source)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool):
            raise _fail(source, key, value, " | ".join(str(c) for c in choices))
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise _fail(source, key, value, f"a list of {item.__name__}")
        return list(value)
    if origin is dict:
        _, item = typing.get_args(tp)
        if value is None:
            return {}
        if item is Any or typing.get_origin(item) is dict:  # nested sections: checked later
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise _fail(source, key, value, "a mapping of names to settings")
            if item is Any:
                return dict(value)
            return {k: _coerce(item, v, f"{key}.{k}", source, fld) for k, v in value.items()}
        numeric = item is float
        ok = isinstance(value, dict) and all(
            isinstance(k, str)
            and (
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
                if numeric
                else isinstance(v, str)
            )
            for k, v in value.items()
        )
        if not ok:
            wanted = "names to non-negative numbers" if numeric else "names to names"
            raise _fail(source, key, value, f"a mapping of {wanted}")
        return {k: float(v) if numeric else v for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"config field {key}: unions are not supported")
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(source, key, value, "true | false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, key, value, "an integer" + _range_text(fld))
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(source, key, value, "a number" + _range_text(fld))
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise _fail(source, key, value, "a string")
        return value
    lo, hi = fld.metadata.get("min"), fld.metadata.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _fail(source, key, value, _range_text(fld).lstrip(" "))
    return value


def _range_text(fld: dataclasses.Field) -> str:
    lo, hi = fld.metadata.get("min"), fld.metadata.get("max")
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
