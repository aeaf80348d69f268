"""The report: scores, galleries of disputed, misclassified and uncertain crops, and
heatmaps of where each model looks, as one self-contained HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from springtail.common.classes import CODES, PROB_COLUMNS
from springtail.common.f1 import macro_f1
from springtail.common.io import read_json
from springtail.common.store import load_crops, read_predictions
from springtail.labels.annotations import VOTE_COLUMNS
from springtail.report import gallery, gradcam
from springtail.report.html import Card, Section, cam_rows, facts, grid, groups, page, wide_table
from springtail.report.images import data_uri, is_flat, overlay
from springtail.report.plots import class_distribution, per_class_f1_long
from springtail.scoring.bootstrap import f1_interval


@dataclass(frozen=True)
class ReportConfig:
    """The ``report`` section of params.yaml."""

    n_disputed: int  # boxes shown from the top of the review list (likeliest mislabelled first)
    n_errors: int  # validation crops the ensemble gets wrong most confidently
    n_per_class: int  # most uncertain test crops shown per predicted class
    uncertainty: str  # entropy | max_prob: how test crops are ranked
    cam_per_class: int  # validation crops per class explained by heatmaps
    cam_models: tuple[str, ...] | None  # models explained; null = every enabled model
    cam_layers: dict[str, str]  # model -> module hooked (e.g. layer4)
    cam_min_cells: int  # default layer: the deepest stage with >= this many cells per side
    cam_alpha: float  # heatmap opacity where relevance is highest
    display_px: int  # crop side on the page, CSS pixels
    seed: int  # breaks ties between equally ranked crops

    def __post_init__(self) -> None:
        if self.uncertainty not in ("entropy", "max_prob"):
            raise ValueError(f"report.uncertainty must be entropy or max_prob, "
                             f"got {self.uncertainty!r}")
        counts = (self.n_disputed, self.n_errors, self.n_per_class, self.cam_per_class, self.cam_min_cells)
        if min(counts) < 0 or not 0 <= self.cam_alpha <= 1 or self.display_px < 16:
            raise ValueError("report counts must be >= 0, cam_alpha in [0, 1], "
                             "display_px >= 16")


@dataclass
class ReportData:
    """Everything the report reads, already loaded."""

    crops: np.ndarray  # (N, S, S, 3) uint8 training crops, row i = crop_id i
    train_index: pd.DataFrame  # train_index.csv
    test_crops: np.ndarray  # (M, S, S, 3) uint8 test crops
    test_index: pd.DataFrame  # test_index.csv (crop_id, idx)
    labels: pd.DataFrame  # labels.csv
    vals: dict[str, pd.DataFrame]  # model -> its val.csv
    ensemble_val: pd.DataFrame  # the ensemble's out-of-fold val.csv
    ensemble_test: pd.DataFrame  # the ensemble's test.csv
    weights: dict  # the ensemble's weights.json
    review: pd.DataFrame  # review.csv: disputed boxes, the likeliest mislabelled first

    @classmethod
    def read(cls, crops: Path, labels: Path, predictions: Path, ensemble: Path, review: Path,
             models: list[str]) -> ReportData:
        """Load the pipeline's outputs: crop store, labels.csv, each model's and the
        ensemble's predictions, weights.json, review.csv."""
        train_crops, train_index = load_crops(crops, "train")
        test_crops, test_index = load_crops(crops, "test")
        read = {"dtype": {"image_id": str, "idx": str}}
        return cls(train_crops, train_index, test_crops, test_index, pd.read_csv(labels, **read),
                   {m: read_predictions(predictions / m / "val.csv") for m in models},
                   read_predictions(ensemble / "val.csv"), read_predictions(ensemble / "test.csv"),
                   read_json(ensemble / "weights.json"), pd.read_csv(review, **read))


def explained_models(config: ReportConfig, models: list[str], source: str | Path = "params.yaml") -> list[str]:
    """The models whose heatmaps are shown: ``report.cam_models``, or every enabled model.

    Raises:
        ValueError: naming ``source`` when a named model is not enabled in ``models``.
    """
    explained = list(config.cam_models if config.cam_models is not None else models)
    unknown = [m for m in explained if m not in models]
    if unknown:
        raise ValueError(f"{source}: report.cam_models {unknown} not in `models` ({', '.join(models)})")
    return explained


@dataclass
class Report:
    html: str
    per_class_f1: pd.DataFrame  # class, model, f1
    class_distribution: pd.DataFrame  # class, stage, count


def code(label: int) -> str:
    return CODES[int(label)] if 0 <= int(label) < len(CODES) else "none"


class _Pictures:
    """Cards of crops at one display size."""

    def __init__(self, data: ReportData, config: ReportConfig):
        self.data, self.config = data, config
        self.small = data.crops.shape[1] * 2 <= config.display_px
        self.test_row = pd.Series(data.test_index["crop_id"].to_numpy(),
                                  index=data.test_index["idx"].astype(str))

    def card(self, image: np.ndarray, lines: list[tuple[str, str]], alt: str,
             tags=(), tags_at: int = 1) -> Card:
        return Card(data_uri(image), lines, alt, self.small, list(tags), tags_at)

    def train(self, crop_id: int, lines, alt: str = "", tags=(), tags_at: int = 1) -> Card:
        return self.card(self.data.crops[int(crop_id)], lines, alt or f"crop {crop_id}", tags, tags_at)

    def test(self, idx: str, lines) -> Card:
        return self.card(self.data.test_crops[int(self.test_row[str(idx)])], lines, f"test crop {idx}")


def _verdict(pred: int, label: int) -> str:
    return "ok" if int(pred) == int(label) else "bad"


def vote_tags(votes, label: int) -> list[tuple[str, str]]:
    """The four votes as chips: green where the expert agrees with the consensus ``label``."""
    return [(code(v), _verdict(v, label)) for v in votes]


def disputed_section(data: ReportData, config: ReportConfig, pics: _Pictures) -> Section:
    rows = gallery.disputed_boxes(data.review, data.train_index, config.n_disputed)
    cards = []
    for r in rows.itertuples(index=False):
        votes = [getattr(r, v) for v in VOTE_COLUMNS]
        label = CODES.index(r.consensus) if r.consensus in CODES else -1
        model = CODES.index(r.model)
        lines = [(f"consensus {r.consensus or '-'} {r.confidence:.2f}", "strong"),
                 (f"model {r.model} {r.model_probability:.2f}", _verdict(model, label)),
                 (f"wrong label: {r.gain:.0%} chance", "muted"),
                 (f"votes {r.agreement}, fold {r.fold}", "muted")]
        cards.append(pics.train(r.crop_id, lines, f"disputed box {r.image_id} line {r.line}",
                                vote_tags(votes, label)))
    lead = (f"The top {len(cards)} of data/interim/review.csv ({len(data.review)} boxes on which the "
            "four experts disagree), the likeliest mislabelled first: the consensus label and its "
            "confidence, the model's out-of-fold opinion (a logistic regression on frozen CNN "
            "features that never saw the crop), the chance the consensus is wrong when experts and "
            "model are combined, and the four votes (green: agrees with the consensus). An expert's "
            "look at the top of the list is expected to fix the most labels.")
    return Section("disputed", "Disputed boxes", escape(lead), grid(cards, "No disputed box has a crop."))


def errors_section(data: ReportData, config: ReportConfig, pics: _Pictures) -> Section:
    rows = gallery.confident_errors(data.ensemble_val, config.n_errors, config.seed)
    votes = gallery.votes_by_crop(data.labels, data.train_index)
    cards = []
    for r in rows.itertuples(index=False):
        lines = [(f"pred {code(r.pred)} {r.p_pred:.2f}", "bad"),
                 (f"label {code(r.label)} {r.p_label:.2f}", "ok")]
        tags = []
        if r.crop_id in votes.index:
            tags = vote_tags(votes.loc[r.crop_id, list(VOTE_COLUMNS)], r.label)
        else:
            lines.append(("background crop", "muted"))
        cards.append(pics.train(r.crop_id, lines, tags=tags, tags_at=2))
    lead = ("Validation crops the ensemble gets wrong with the highest probability (out of fold): "
            "its prediction, the consensus label with the probability it gave that label, and "
            "the experts' votes. Some are label errors rather than model errors.")
    return Section("errors", "Confident errors (validation)", escape(lead),
                   grid(cards, "The ensemble makes no error on the validation crops."))


def uncertain_section(data: ReportData, config: ReportConfig, pics: _Pictures) -> Section:
    rows = gallery.uncertain_test(data.ensemble_test, config.n_per_class, config.uncertainty, config.seed)
    parts = []
    for pred, group in rows.groupby("pred", sort=True):
        cards = [pics.test(r.idx, [(f"{code(r.pred)} {r.p_pred:.2f}", ""),
                                   (f"or {code(r.second)} {r.p_second:.2f}", "muted"),
                                   (f"test idx {r.idx}", "muted")])
                 for r in group.itertuples(index=False)]
        parts.append((f"predicted {code(pred)}", grid(cards)))
    ranking = "highest entropy" if config.uncertainty == "entropy" else "lowest top probability"
    lead = (f"For each class the ensemble predicts on the test crops, the {config.n_per_class} crops "
            f"it is least sure of ({ranking}), with its two most likely classes.")
    return Section("uncertain", "Uncertain test crops", escape(lead),
                   groups(parts) if parts else '<p class="note">No test crops.</p>')


def _explain_all(models: dict, crops: np.ndarray, config: ReportConfig):
    """model -> Explanation, or the reason it has none."""
    out = {}
    for name, model in models.items():
        try:
            out[name] = gradcam.explain(model, crops, config.cam_layers.get(name), config.cam_min_cells)
        except ValueError as err:
            out[name] = str(err)
    return out


def _cam_card(pics: _Pictures, crop: np.ndarray, e: gradcam.Explanation, i: int, label: int,
              name: str, alpha: float) -> Card:
    pred = int(e.target[i])
    lines = [(f"{code(pred)} {e.probs[i, pred]:.2f}", _verdict(pred, label))]
    if is_flat(e.cams[i]):  # e.g. a 1 x 1 stage: no place to show
        lines.append(("uniform map", "muted"))
        return pics.card(crop, lines, f"{name}: uniform map")
    return pics.card(overlay(crop, e.cams[i], alpha), lines, f"{name} heatmap")


def cam_section(data: ReportData, config: ReportConfig, pics: _Pictures, models: dict) -> Section:
    picks = gallery.cam_picks(data.ensemble_val, config.cam_per_class, config.seed)
    crops = data.crops[picks["crop_id"].to_numpy(dtype=int)]
    explained = _explain_all(models, crops, config) if len(picks) else {}
    done = {n: e for n, e in explained.items() if not isinstance(e, str)}
    headers = [("crop", "consensus label")] + [
        (n, f"{gradcam.METHODS[e.method]}, {e.layer}") for n, e in done.items()]
    blocks = []
    for label, group in picks.groupby("label", sort=True):
        rows = [[pics.train(r.crop_id, [(f"label {code(label)}", ""), (f"crop {r.crop_id}", "muted")])]
                + [_cam_card(pics, crops[i], e, i, label, n, config.cam_alpha) for n, e in done.items()]
                for i, r in zip(group.index, group.itertuples(index=False))]
        blocks.append((code(label), cam_rows(headers, rows)))
    notes = "".join(f'<p class="note">{escape(n)}: no heatmap ({escape(e)}).</p>'
                    for n, e in explained.items() if isinstance(e, str))
    lead = (f"{config.cam_per_class} validation crops per consensus class. Each model's map "
            "explains the class it predicts (green when it matches the label). "
            '<span class="legend"></span> low to high relevance, stretched per map. Grad-CAM for the '
            "CNNs; for cnn_xgb, the trees' TreeSHAP contributions weight the CNN's last stage "
            "(Grad-CAM for a linear head); for the ViT, attention rollout of the class token, "
            "which does not depend on the class.")
    # Smaller pictures (96 px for the default 128) put two classes side by side on a laptop screen.
    px = round(0.75 * config.display_px)
    body = groups(blocks, px) if blocks and done else '<p class="note">No heatmaps.</p>'
    return Section("heatmaps", "Where the models look", lead, notes + body)


def with_interval(val: pd.DataFrame) -> str:
    """Macro F1 of a val.csv table with its 90 % interval (resampling source images), e.g.
    ``0.819 [0.78, 0.85]``."""
    y = val["label"].to_numpy(dtype=int)
    pred = val[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    low, high = f1_interval(y, pred, val["image_id"].astype(str).to_numpy())
    return f"{macro_f1(y, pred):.3f} [{low:.2f}, {high:.2f}]"


def scores_section(data: ReportData, f1: pd.DataFrame, dist: pd.DataFrame) -> Section:
    singles = data.weights.get("model_val_macro_f1") or {}
    items = [(f"{len(data.ensemble_val)}", "validation crops"), (f"{len(data.ensemble_test)}", "test crops"),
             (with_interval(data.ensemble_val),
              f"ensemble macro F1 ({data.weights.get('method', '?')}, nested out of fold)")]
    if singles:
        best = max(singles, key=singles.get)
        value = with_interval(data.vals[best]) if best in data.vals else f"{singles[best]:.3f}"
        items.append((value, f"best single model ({best})"))
    tables = ('<div class="tables"><div><h3>F1 per class, validation</h3>'
              + wide_table(f1, "model", "f1", ".2f", "#c6e6d2", top=1.0)
              + "</div><div><h3>Boxes and crops per class</h3>"
              + wide_table(dist, "stage", "count", "d", "#d2e3fc") + "</div></div>")
    lead = ("Macro F1 over the nine classes on the validation fold; the ensemble's is nested out "
            "of fold (members chosen and combined on the other inner folds). In brackets, its 90 % bootstrap interval (validation photos resampled). "
            "Class counts follow the pipeline: the plurality of the votes per box, the "
            "consensus label of the kept boxes, the training crops (with FOND background), and "
            "the test crops by predicted class.")
    return Section("scores", "Scores and class balance", escape(lead), facts(items) + tables)


def build_report(data: ReportData, models: dict, config: ReportConfig, settings: str = "",
                 totals: Section | None = None) -> Report:
    """Render the report.

    Args:
        models: name -> fitted registry model, for the heatmaps (in column order).
        settings: text shown at the end of the page (e.g. the resolved configuration).
        totals: the species totals' section (``report.totals``), after the scores.
    """
    f1 = per_class_f1_long(data.vals, data.ensemble_val)
    dist = class_distribution(data.labels, data.train_index, data.ensemble_test)
    pics = _Pictures(data, config)
    sections = [scores_section(data, f1, dist), *([totals] if totals else []), disputed_section(data, config, pics),
                errors_section(data, config, pics), uncertain_section(data, config, pics),
                cam_section(data, config, pics, models)]
    if settings:
        sections.append(Section("settings", "Settings", "The report's resolved configuration.",
                                f"<pre>{escape(settings)}</pre>"))
    subtitle = (f"Models: {', '.join(data.vals)}; {len(data.crops)} training crops of "
                f"{data.crops.shape[1]} px, {len(data.test_crops)} test crops.")
    html = page("Springtail classifier report", subtitle, sections, config.display_px)
    return Report(html, f1, dist)
