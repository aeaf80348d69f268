"""What each class looks like: a habitus (body plan, appendages, pigment) per specimen.

Trait ranges follow the field-guide cues of the seven taxa (body elongation,
segments, antenna length, furca, pigment pattern, setae or scales). Ranges of
the hard pairs overlap on purpose: Ceratophysella vs Hypogastrura (stout,
dark) differ mostly by skin granulation, tone and anal spines; the pale
Isotomidae (Cryptopygus, Isotomiella, Parisotoma) by size, eyes, furca length
and diffuse pigment. Every specimen also varies in age, preservation and pose.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Segment plans (head, thorax, abdomen): relative lengths and half-widths.
PLANS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "hypogastrurid": ((0.17, 0.05, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.09, 0.06),
                      (0.80, 0.70, 0.95, 1.00, 1.00, 1.00, 1.00, 0.95, 0.80, 0.55)),
    "isotomid": ((0.18, 0.03, 0.11, 0.10, 0.09, 0.09, 0.10, 0.10, 0.10),
                 (0.85, 0.60, 0.90, 0.95, 0.95, 1.00, 1.00, 0.95, 0.70)),
    "entomobryid": ((0.17, 0.02, 0.13, 0.09, 0.06, 0.07, 0.08, 0.24, 0.06, 0.04),
                    (0.85, 0.50, 1.00, 0.95, 0.90, 0.90, 0.95, 1.00, 0.75, 0.50)),
    "tullbergiid": ((0.10, 0.08, 0.08, 0.08, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.08),
                    (0.85, 0.90, 0.95, 0.95, 1.00, 1.00, 1.00, 1.00, 0.95, 0.90, 0.80)),
    "larva": ((0.07,) + (0.0775,) * 12, (0.6,) + (1.0,) * 10 + (0.9, 0.7)),
    "mite": ((0.08, 0.92), (0.3, 1.00)),
    "globular": ((0.25, 0.75), (0.65, 1.00)),
}

# Trait ranges per taxon: uniform in (lo, hi). Colours are transmittance (0..255,
# what the pigment lets through); "pigment" is its opacity.
TAXA: dict[str, dict[str, object]] = {
    "Cer": dict(plan="hypogastrurid", size=(0.85, 1.15), elong=(0.29, 0.42), antenna=(0.13, 0.24),
                legs=(0.12, 0.20), furca=(0.07, 0.16), tone=((45, 90), (50, 95), (75, 120)),
                pigment=(0.65, 0.95), mottle=(0.1, 0.35), granules=(0.0, 0.25), eyes=1.0,
                setae=(0.3, 0.9), seta_len=(0.02, 0.05), spines=(0.025, 0.06)),
    "HYP_MAN": dict(plan="hypogastrurid", size=(0.8, 1.1), elong=(0.27, 0.40), antenna=(0.11, 0.20),
                    legs=(0.10, 0.16), furca=(0.05, 0.12), tone=((75, 120), (85, 125), (110, 150)),
                    pigment=(0.55, 0.9), mottle=(0.05, 0.25), granules=(0.2, 0.6), eyes=1.0,
                    setae=(0.2, 0.7), seta_len=(0.015, 0.04), spines=(0.0, 0.03)),
    "CRY_THE": dict(plan="isotomid", size=(0.8, 1.1), elong=(0.19, 0.28), antenna=(0.24, 0.38),
                    legs=(0.17, 0.26), furca=(0.24, 0.38), tone=((165, 205), (172, 210), (195, 230)),
                    pigment=(0.35, 0.6), diffuse=(0.0, 0.2), eyes=1.0,
                    setae=(0.2, 0.5), seta_len=(0.03, 0.07)),
    "ISO_MIN": dict(plan="isotomid", size=(0.6, 0.85), elong=(0.16, 0.23), antenna=(0.2, 0.3),
                    legs=(0.15, 0.24), furca=(0.33, 0.5), tone=((228, 250), (228, 250), (225, 248)),
                    pigment=(0.08, 0.28), diffuse=(0.0, 0.1), eyes=0.0,
                    setae=(0.2, 0.5), seta_len=(0.04, 0.1)),
    "PAR_NOT": dict(plan="isotomid", size=(0.65, 0.9), elong=(0.19, 0.27), antenna=(0.23, 0.34),
                    legs=(0.16, 0.25), furca=(0.24, 0.36), tone=((175, 215), (175, 212), (170, 210)),
                    pigment=(0.3, 0.5), diffuse=(0.5, 1.0), eyes=1.0,
                    setae=(0.2, 0.5), seta_len=(0.03, 0.06)),
    "LEP": dict(plan="entomobryid", size=(0.9, 1.25), elong=(0.21, 0.30), antenna=(0.4, 0.65),
                legs=(0.25, 0.36), furca=(0.38, 0.55), tone=((195, 225), (172, 205), (120, 165)),
                pigment=(0.45, 0.75), scales=(0.4, 0.9), eyes=1.0,
                setae=(0.05, 0.3), seta_len=(0.03, 0.08)),
    "MET_AFF": dict(plan="tullbergiid", size=(0.8, 1.1), elong=(0.09, 0.15), antenna=(0.035, 0.08),
                    legs=(0.05, 0.10), furca=(0.0, 0.0), tone=((232, 252), (232, 252), (228, 250)),
                    pigment=(0.15, 0.35), eyes=0.0, setae=(0.1, 0.3), seta_len=(0.01, 0.03)),
    # AUTRE: other small arthropods and other Collembola.
    "mite": dict(plan="mite", size=(0.5, 0.9), elong=(0.6, 0.92), antenna=(0.0, 0.0),
                 legs=(0.3, 0.75), furca=(0.0, 0.0), tone=((120, 205), (70, 160), (30, 120)),
                 pigment=(0.55, 0.95), mottle=(0.0, 0.3), eyes=0.0, setae=(0.1, 0.6), seta_len=(0.03, 0.12)),
    "globular": dict(plan="globular", size=(0.55, 0.9), elong=(0.6, 0.85), antenna=(0.4, 0.75),
                     legs=(0.25, 0.4), furca=(0.15, 0.3), tone=((60, 200), (50, 180), (60, 190)),
                     pigment=(0.4, 0.9), mottle=(0.2, 0.6), eyes=1.0, setae=(0.2, 0.6),
                     seta_len=(0.03, 0.08)),
    "banded": dict(plan="entomobryid", size=(0.9, 1.3), elong=(0.18, 0.26), antenna=(0.45, 0.8),
                   legs=(0.25, 0.38), furca=(0.35, 0.55), tone=((110, 190), (100, 180), (70, 170)),
                   pigment=(0.45, 0.85), bands=(0.4, 0.9), eyes=1.0, setae=(0.3, 0.7), seta_len=(0.04, 0.1)),
    "isotomid": dict(plan="isotomid", size=(0.8, 1.3), elong=(0.17, 0.3), antenna=(0.18, 0.4),
                     legs=(0.15, 0.27), furca=(0.2, 0.45), tone=((150, 235), (150, 235), (150, 235)),
                     pigment=(0.2, 0.7), diffuse=(0.0, 0.6), eyes=0.7, setae=(0.2, 0.6),
                     seta_len=(0.03, 0.08)),
    "stout": dict(plan="hypogastrurid", size=(0.7, 1.2), elong=(0.3, 0.45), antenna=(0.08, 0.18),
                  legs=(0.08, 0.15), furca=(0.0, 0.0), tone=((120, 230), (110, 225), (110, 230)),
                  pigment=(0.3, 0.8), granules=(0.3, 0.9), mottle=(0.0, 0.3), eyes=0.6,
                  setae=(0.5, 1.0), seta_len=(0.03, 0.07)),
    "larva": dict(plan="larva", size=(0.8, 1.3), elong=(0.1, 0.18), antenna=(0.0, 0.03),
                  legs=(0.0, 0.0), furca=(0.0, 0.0), tone=((200, 245), (190, 240), (160, 225)),
                  pigment=(0.2, 0.5), diffuse=(0.0, 0.3), eyes=0.0, setae=(0.05, 0.3), seta_len=(0.02, 0.05)),
}
CLASS_TAXA = {1: "Cer", 2: "CRY_THE", 3: "HYP_MAN", 4: "ISO_MIN", 5: "LEP", 6: "MET_AFF", 7: "PAR_NOT"}
OTHER_TAXA = (("mite", 0.36), ("globular", 0.14), ("banded", 0.14), ("isotomid", 0.16),
              ("stout", 0.1), ("larva", 0.1))


@dataclass(frozen=True)
class Habitus:
    """One specimen's appearance; lengths are fractions of its body length."""

    taxon: str
    plan: str
    size: float                     # body length relative to the typical specimen
    seg_len: tuple[float, ...]      # segment lengths, head first, summing to 1
    seg_width: tuple[float, ...]    # segment half-widths relative to the widest
    elong: float                    # body width / body length
    antenna: float
    legs: float
    furca: float                    # 0: no furca
    furca_out: bool                 # extended behind the body, else folded under it
    tone: tuple[int, int, int]      # pigment transmittance colour
    pigment: float                  # pigment opacity 0..1
    mottle: float = 0.0             # blotchy dark pigment
    granules: float = 0.0           # granular skin
    diffuse: float = 0.0            # diffuse grey patches
    scales: float = 0.0             # scale sheen
    bands: float = 0.0              # transverse dark bands
    eyes: bool = True
    setae: float = 0.5              # setae per unit of outline
    seta_len: float = 0.04
    spines: float = 0.0             # anal spine length
    gut: float = 0.0                # opacity of the gut content
    bend: float = 0.0               # curvature of the body axis
    lateral: bool = False           # seen from the side
    constriction: float = 0.1       # waist depth between segments
    antenna_spread: float = 0.5     # radians between an antenna and the body axis


def _draw(spec: object, rng: np.random.Generator) -> float:
    lo, hi = spec  # type: ignore[misc]
    return float(rng.uniform(lo, hi))


def sample_habitus(cls: int, rng: np.random.Generator) -> Habitus:
    """Draw one specimen of class ``cls`` (0..7), with its individual variation."""
    if cls == 0:
        names, weights = zip(*OTHER_TAXA)
        taxon = names[rng.choice(len(names), p=np.asarray(weights) / sum(weights))]
    elif cls in CLASS_TAXA:
        taxon = CLASS_TAXA[cls]
    else:
        raise ValueError(f"class {cls} has no specimen (expected 0..7)")
    spec = TAXA[taxon]
    lengths, widths = PLANS[spec["plan"]]  # type: ignore[index]
    seg_len = np.asarray(lengths) * rng.lognormal(0, 0.12, len(lengths))
    seg_width = np.asarray(widths) * rng.normal(1, 0.04, len(widths))
    shade = rng.uniform()  # one shade for the three channels, so tones stay near-grey
    tone = tuple(int(lo + (hi - lo) * np.clip(shade + rng.normal(0, 0.12), 0, 1))
                 for lo, hi in spec["tone"])  # type: ignore[union-attr]
    optional = {k: _draw(spec[k], rng) for k in ("mottle", "granules", "diffuse", "scales", "bands",
                                                 "spines") if k in spec}
    habitus = Habitus(
        taxon=taxon, plan=str(spec["plan"]), size=_draw(spec["size"], rng),
        seg_len=tuple(seg_len / seg_len.sum()), seg_width=tuple(seg_width / seg_width.max()),
        elong=_draw(spec["elong"], rng), antenna=_draw(spec["antenna"], rng),
        legs=_draw(spec["legs"], rng), furca=_draw(spec["furca"], rng),
        furca_out=bool(rng.random() < 0.4), tone=tone,  # type: ignore[arg-type]
        pigment=_draw(spec["pigment"], rng),
        eyes=bool(rng.random() < float(spec["eyes"])),  # type: ignore[arg-type]
        setae=_draw(spec["setae"], rng), seta_len=_draw(spec["seta_len"], rng),
        gut=float(rng.uniform(0.1, 0.45)) if rng.random() < 0.3 else 0.0,
        bend=float(rng.normal(0, 0.12)), lateral=bool(rng.random() < 0.2),
        constriction=float(rng.uniform(0.03, 0.14)), antenna_spread=float(rng.uniform(0.25, 0.9)),
        **optional,
    )
    return _preserve(habitus, rng)


def _preserve(h: Habitus, rng: np.random.Generator) -> Habitus:
    """Age, preservation and mounting: juveniles, bleached or broken specimens, curled bodies."""
    if rng.random() < 0.15:  # juvenile: smaller and paler
        h = replace(h, size=h.size * rng.uniform(0.55, 0.8), pigment=h.pigment * rng.uniform(0.5, 0.9))
    if rng.random() < 0.15:  # bleached in alcohol
        fade = rng.uniform(0.45, 0.85)
        h = replace(h, pigment=h.pigment * fade, mottle=h.mottle * fade, diffuse=h.diffuse * fade)
    if rng.random() < 0.15:  # antennae broken off
        h = replace(h, antenna=h.antenna * rng.uniform(0.2, 0.6))
    if rng.random() < 0.1:  # curled
        h = replace(h, bend=float(rng.choice([-1, 1]) * rng.uniform(0.3, 0.55)))
    if rng.random() < 0.15 and h.furca > 0:  # furca hidden or lost
        h = replace(h, furca=0.0)
    return h
