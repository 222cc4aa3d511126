"""BSS-eval with mir_eval: a mixture's sources, and folders of wav files from any system.

:func:`bss_eval` wraps ``mir_eval.separation.bss_eval_sources`` with the two
things the field's baseline got wrong: a silent reference is never scored
(mir_eval's numbers are meaningless for it, and the baseline's users saw every
metric at 0), and a silent estimate is scored as the failure it is instead of
crashing the run. Both are reported to the caller, who counts them.

:func:`score_folders` is the ``score`` command: wavs matched by name,
resampled to the reference rate and cut or padded to the reference length.
"""

from __future__ import annotations

import itertools
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.audio import read_wav, resample
from pipeline.errors import UserError

log = logging.getLogger(__name__)

SILENT_ESTIMATE_DB = -120.0  # level of the noise a silent estimate is replaced by (scores very low)


def level_db(wave: np.ndarray) -> float:
    """RMS level in dBFS (−inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


@dataclass
class Scores:
    """BSS-eval metrics per reference source (dB) and which estimate was matched to each."""

    sdr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    assignment: list[int]  # assignment[j]: index of the estimate scored against reference j
    silent_estimates: int = 0


def bss_eval(references: np.ndarray, estimates: np.ndarray, search: bool, silence_db: float = -50.0) -> Scores:
    """mir_eval's SDR/SIR/SAR for one mixture.

    ``references`` (n, samples), ``estimates`` (m, samples). Without ``search``
    estimate j is scored against reference j (m ≥ n; extra estimates are
    ignored). With ``search`` every choice of n estimates in every order is
    tried and the best mean SDR kept (an oracle assignment).

    Raises ``ValueError`` when a reference is quieter than ``silence_db``: the
    caller excludes that mixture and counts it.
    """
    import mir_eval.separation

    warnings.filterwarnings("ignore", "mir_eval.separation", FutureWarning)  # pinned below 0.9
    n = len(references)
    quiet = [j for j in range(n) if level_db(references[j]) < silence_db]
    if quiet:
        raise ValueError(f"silent reference(s) {quiet} (below {silence_db:g} dBFS)")
    if len(estimates) < n:
        raise ValueError(f"{len(estimates)} estimates for {n} references")
    estimates = np.array(estimates, dtype=np.float64)
    silent = [j for j in range(len(estimates)) if not np.any(estimates[j])]
    rng = np.random.default_rng(0)
    for j in silent:  # scored as near-silence: a very low SDR, not an exception
        estimates[j] = rng.standard_normal(estimates.shape[1]) * 10 ** (SILENT_ESTIMATE_DB / 20)
    subsets = itertools.combinations(range(len(estimates)), n) if search else [tuple(range(n))]
    best = None
    for subset in subsets:
        sdr, sir, sar, perm = mir_eval.separation.bss_eval_sources(
            references.astype(np.float64), estimates[list(subset)], compute_permutation=search
        )
        if best is None or np.mean(sdr) > np.mean(best.sdr):
            best = Scores(sdr, sir, sar, [subset[int(p)] for p in perm])
    best.silent_estimates = sum(1 for j in best.assignment if j in silent)
    return best


# --- the `score` command: folders of wav files ------------------------------------------------


@dataclass
class FolderScores:
    """Scores of every mixture found under a reference folder."""

    mixtures: dict[str, dict] = field(default_factory=dict)  # name → {"sources", "sdr", "sir", "sar", ...}
    excluded: dict[str, str] = field(default_factory=dict)  # name → why it was not scored

    def table(self) -> str:
        """A printable table: one line per source, then the means."""
        lines = [f"{'mixture':<24} {'source':<20} {'SDR':>8} {'SIR':>8} {'SAR':>8}"]
        for name, m in self.mixtures.items():
            for k, src in enumerate(m["sources"]):
                lines.append(f"{name:<24} {src:<20} {m['sdr'][k]:8.2f} {m['sir'][k]:8.2f} {m['sar'][k]:8.2f}")
        if self.mixtures:
            means = [np.mean([v for m in self.mixtures.values() for v in m[key]]) for key in ("sdr", "sir", "sar")]
            lines.append(f"{'mean':<24} {'':<20} {means[0]:8.2f} {means[1]:8.2f} {means[2]:8.2f}")
        for name, why in self.excluded.items():
            lines.append(f"{name:<24} not scored: {why}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"mixtures": self.mixtures, "excluded": self.excluded}


def _mixture_folders(reference: Path) -> list[tuple[str, Path]]:
    """(name, folder) per mixture: the subfolders holding wavs, or the folder itself."""
    if not reference.is_dir():
        raise UserError(f"reference folder not found: {reference}")
    subs = sorted(p for p in reference.iterdir() if p.is_dir() and any(p.glob("*.wav")))
    if subs:
        return [(p.name, p) for p in subs]
    if any(reference.glob("*.wav")):
        return [(reference.name, reference)]
    raise UserError(f"{reference} holds no .wav files (one subfolder or one set of wavs per mixture)")


def _read_aligned(path: Path, rate: int | None, length: int | None) -> tuple[np.ndarray, int]:
    wave, sr = read_wav(path)
    if rate is not None and sr != rate:
        wave, sr = resample(wave, sr, rate), rate
    if length is not None:
        wave = np.pad(wave[:length], (0, max(0, length - len(wave))))
    return wave.astype(np.float64), sr


def score_folders(reference: Path, estimate: Path, search: bool = False, silence_db: float = -50.0) -> FolderScores:
    """Score every mixture under ``reference`` against the same-named wavs under ``estimate``.

    Estimates are resampled to the reference's rate and cut or zero-padded to
    its length. A mixture whose estimate files are missing, or whose references
    are silent, is listed in ``excluded`` (with a warning) and the rest go on.
    """
    out = FolderScores()
    single = not any(p.is_dir() for p in reference.iterdir()) if reference.is_dir() else False
    for name, folder in _mixture_folders(reference):
        est_folder = estimate if single else estimate / name
        refs = sorted(folder.glob("*.wav"))
        missing = [p.name for p in refs if not (est_folder / p.name).is_file()]
        if missing:
            out.excluded[name] = f"no estimate for {', '.join(missing)} in {est_folder}"
            log.warning("%s: %s", name, out.excluded[name])
            continue
        ref_waves, rates = zip(*(_read_aligned(p, None, None) for p in refs))
        if len(set(rates)) > 1 or len({len(w) for w in ref_waves}) > 1:
            out.excluded[name] = "its reference wavs differ in sample rate or length"
            log.warning("%s: %s", name, out.excluded[name])
            continue
        est_waves = [_read_aligned(est_folder / p.name, rates[0], len(ref_waves[0]))[0] for p in refs]
        try:
            s = bss_eval(np.stack(ref_waves), np.stack(est_waves), search, silence_db)
        except ValueError as e:
            out.excluded[name] = str(e)
            log.warning("%s: not scored: %s", name, e)
            continue
        out.mixtures[name] = {
            "sources": [p.name for p in refs],
            "estimates": [refs[j].name for j in s.assignment],
            "sdr": s.sdr.tolist(),
            "sir": s.sir.tolist(),
            "sar": s.sar.tolist(),
            "silent_estimates": s.silent_estimates,
        }
    return out


def write_json(scores: FolderScores, path: Path) -> None:
    """The scores as JSON (written whole, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(scores.to_json(), indent=1) + "\n")
    tmp.replace(path)
