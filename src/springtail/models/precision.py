"""The table behind ``precision: auto`` and ``channels_last: auto``: the fastest training
precision and memory format for each network family on each kind of machine.

A fixed table, never a timing taken at stage start: the choice is the same on every run
of one machine, so reruns stay bit-identical. ``make bench`` measures all four variants
with a plain training loop and says whether the table's pick is still the fastest.
Images/s of one training step (batch 32, 128 px, plain loop, 2 cores of an Intel Xeon
with AVX-512 BF16 and AMX), fp32 / fp32 channels-last / bf16 / bf16 channels-last:

=====================================  ======  ======  ======  ======
family (network measured)              fp32    fp32 CL bf16    bf16 CL
=====================================  ======  ======  ======  ======
efficientnet (tf_efficientnet_lite0)   38.7    54.5    43.1    42.2
  its hybrid ViT (vit_hybrid)          37.4    49.7    44.6    45.0
resnet (resnet18)                      49.4    54.7    85.3    101.2
convnext (convnext_atto)               84.6    85.5    80.1    81.1
vit (vit_tiny_patch16_224)             68.2    68.3    70.4    70.0
=====================================  ======  ======  ======  ======

A 2-core AMD EPYC with AVX-512 BF16 ranks them the same way (96 px: EfficientNet-Lite0
68 / 110 / 73 / 59, resnet18 73 / 74 / 112 / 114-131). Without native bf16 the CPU
emulates it 10-40x slower, so such machines train in fp32; GPUs train in bf16 (fp16
with a gradient scaler where bf16 is missing).
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = (  # (arch name prefix, family); the first match wins
    ("tf_efficientnet", "efficientnet"), ("efficientnet", "efficientnet"), ("mobilenet", "efficientnet"),
    ("test_efficientnet", "efficientnet"),
    ("resnet", "resnet"), ("resnext", "resnet"), ("wide_resnet", "resnet"), ("test_resnet", "resnet"),
    ("convnext", "convnext"), ("test_convnext", "convnext"),
    ("vit_", "vit"), ("deit", "vit"), ("test_vit", "vit"),
)

# (machine kind, family) -> (precision, channels_last); family "other" for unknown networks
TABLE = {
    ("cpu_bf16", "efficientnet"): ("fp32", True),
    ("cpu_bf16", "resnet"): ("bf16", True),
    ("cpu_bf16", "convnext"): ("fp32", True),
    ("cpu_bf16", "vit"): ("bf16", False),
    ("cpu_bf16", "other"): ("fp32", True),
    ("cpu", "efficientnet"): ("fp32", True),
    ("cpu", "resnet"): ("fp32", True),
    ("cpu", "convnext"): ("fp32", True),
    ("cpu", "vit"): ("fp32", False),
    ("cpu", "other"): ("fp32", True),
    ("cuda", "efficientnet"): ("bf16", True),
    ("cuda", "resnet"): ("bf16", True),
    ("cuda", "convnext"): ("bf16", True),
    ("cuda", "vit"): ("bf16", False),
    ("cuda", "other"): ("bf16", True),
}
PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(value: str | None, key: str = "precision", nullable: bool = False) -> None:
    """Raise ValueError naming ``key`` unless ``value`` is one of :data:`PRECISIONS` (or None
    when ``nullable``: a model section's null = train.precision)."""
    if not (value in PRECISIONS or (nullable and value is None)):
        allowed = ("null or " if nullable else "") + "one of " + ", ".join(PRECISIONS)
        raise ValueError(f"{key} must be {allowed}, got {value!r}")


def check_channels_last(value: bool | str, key: str = "channels_last") -> None:
    """Raise ValueError naming ``key`` unless ``value`` is auto, true or false."""
    if value != "auto" and not isinstance(value, bool):
        raise ValueError(f"{key} must be auto, true or false, got {value!r}")


def family(arch: str) -> str:
    """The network family of a timm architecture name ('other' when none matches)."""
    name = arch.lower()
    return next((fam for prefix, fam in FAMILIES if name.startswith(prefix)), "other")


@dataclass(frozen=True)
class Choice:
    """What ``auto`` resolves to, and the table row it came from."""

    precision: str  # fp32 | bf16 (what the table asks for; the runtime may still fall back)
    channels_last: bool
    rule: str  # e.g. "cpu_bf16/efficientnet", or "forced" when neither setting was auto


def choose(machine: str, arch: str, precision: str, channels_last: bool | str) -> Choice:
    """Resolve ``precision`` (auto | fp32 | bf16) and ``channels_last`` (auto | true | false)
    for network ``arch`` on a ``machine`` kind (cuda | cpu_bf16 | cpu)."""
    check_precision(precision)
    check_channels_last(channels_last)
    key = (machine, family(arch))
    auto_precision, auto_layout = TABLE[key]
    forced = precision != "auto" and channels_last != "auto"
    return Choice(auto_precision if precision == "auto" else precision,
                  auto_layout if channels_last == "auto" else channels_last,
                  "forced" if forced else "/".join(key))
