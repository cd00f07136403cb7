"""The training loop: micro-batches -> MaxSim scores -> losses summed over Matryoshka dims ->
gradient accumulation -> AdamW step; validation, best-model keeping and checkpoints on a
schedule. A run resumes from its last checkpoint exactly where it stopped (same batches, same
negatives, same dropout), so a run killed at any point and restarted ends with the same model
as one never stopped.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from colmax.train import checkpoint, losses
from colmax.train.anchor import Anchors
from colmax.train.batches import BatchPlan, MicroBatch, sample_negatives
from colmax.train.config import TrainConfig
from colmax.train.data import NEGATIVE_VARIANT
from colmax.train.prepare import Prepared
from colmax.train.student import Student, prefix_maxsim
from colmax.train.teacher import fuse, teacher_weights
from colmax.train.validate import Validator

LAST = "checkpoints/last.pt"
BEST = "checkpoints/best.pt"
INIT = "checkpoints/init.pt"  # the weights before step 1 (for interpolated exports)
LOG_EVERY = 10


@dataclass
class StepStats:
    loss: float
    parts: dict[str, float]
    tokens: int
    seconds: float
    sources: Counter[str]  # micro-batches per training source


class Trainer:
    """Trains ``student`` on ``prepared`` data; files go to ``run_dir``."""

    def __init__(
        self,
        student: Student,
        prepared: Prepared,
        config: TrainConfig,
        run_dir: Path,
        *,
        validator: Validator | None = None,
        bf16: bool = False,
        anchor: torch.nn.Module | None = None,
    ) -> None:
        self.student = student
        self.anchor = None
        if anchor is not None and config.anchored:
            self.anchor = Anchors.for_config(anchor, config, bf16)
        self.prepared = prepared
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.validator = validator
        self.bf16 = bf16
        sizes = {s: len(d.examples) for s, d in prepared.sources.items()}
        self.plan = BatchPlan(sizes, config.mix, config.batch_size, config.seed)
        self.teacher = self._teacher_logits() if config.distill else {}
        self.optimizer = torch.optim.AdamW(self._param_groups(), weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self.position = (0, 0)
        self.best: dict[str, Any] = {"score": -math.inf, "step": None, "metrics": {}}
        self.elapsed = 0.0  # training seconds over all sittings
        self.tokens = 0
        self.validated_at: int | None = None
        self._stop = False

    # ------------------------------------------------------------------ setup

    def _param_groups(self) -> list[dict[str, Any]]:
        model = self.student.model
        projection = [p for p in model.projection.parameters() if p.requires_grad]
        backbone = [p for p in model.backbone.parameters() if p.requires_grad]
        groups = [{"params": projection, "lr": self.config.projection_lr, "weight_decay": 0.0}]
        if backbone:
            groups.append({"params": backbone, "lr": self.config.lr})
        return groups

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up over ``warmup * max_steps`` steps, then linear decay to 0."""
        total = self.config.max_steps
        warm = max(1, int(self.config.warmup * total))
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    def _teacher_logits(self) -> dict[str, np.ndarray]:
        weights = teacher_weights(self.config.teacher, self.config.teacher_weights)
        out = {}
        for source, data in self.prepared.sources.items():
            if data.teacher is None:
                raise ValueError(f"no teacher scores for source {source!r}")
            out[source] = fuse(data.teacher, weights) * self.config.teacher_scale
        return out

    # ------------------------------------------------------------------ one step

    def micro_batch(self, batch: MicroBatch) -> tuple[torch.Tensor, dict[str, float], int]:
        """The loss of one micro-batch (summed over Matryoshka dims), its parts and tokens."""
        cfg = self.config
        data = self.prepared.sources[batch.source]
        corpus = self.prepared.corpus
        variant = NEGATIVE_VARIANT[batch.source]
        picks = sample_negatives(data.negatives, batch.rows, cfg.negatives, cfg.seed, batch)
        group = 1 + cfg.negatives
        queries, docs, doc_ids = [], [], []
        for row, pick in zip(batch.rows, picks):
            example = data.examples[row]
            queries.append(example.query)
            docs.append(example.positive)
            doc_ids.append(example.doc_id)
            for j in pick:
                doc_ids.append(data.negatives[row][j])
                docs.append(corpus.text(data.negatives[row][j], variant))
        exclude = self._known_mask(batch, doc_ids, group)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            q_out = self.student.forward(queries, queries=True)
            d_out = self.student.forward(docs, queries=False)
        teacher = None
        if cfg.distill:
            cols = np.array([[0, *(1 + j for j in pick)] for pick in picks])
            rows = np.array(batch.rows)[:, None]
            teacher = torch.from_numpy(self.teacher[batch.source][rows, cols]).float()
        total = torch.zeros(())
        parts: dict[str, float] = {}
        for dim in cfg.dims:
            scores = prefix_maxsim(q_out, d_out, dim)
            contrastive = losses.retrieval_loss(
                scores,
                group,
                kind=cfg.loss,
                in_batch=cfg.in_batch,
                temperature=cfg.temperature,
                margin=cfg.margin,
                exclude=exclude,
            )
            total = total + contrastive
            parts[f"{cfg.loss}@{dim}"] = float(contrastive.detach())
            if teacher is not None:
                own = losses.own_scores(scores, group)
                kl = losses.distillation_loss(own, teacher, cfg.temperature)
                total = total + cfg.distill_weight * kl
                parts[f"kl@{dim}"] = float(kl.detach())
        tokens = q_out.tokens + d_out.tokens
        if self.anchor is not None:
            anchored = self.anchor.terms(self.student, batch, (q_out, d_out))
            tokens += anchored.extra_tokens
            if cfg.anchor_weight > 0:
                total = total + cfg.anchor_weight * anchored.gap
            parts["anchor"] = float(anchored.gap.detach())
            for dim, kl in anchored.distill.items():
                total = total + cfg.anchor_distill_weight * kl
                parts[f"anchor-kl@{dim}"] = float(kl.detach())
        return total, parts, tokens

    def _known_mask(self, batch: MicroBatch, doc_ids: list[str], group: int) -> torch.Tensor:
        """True where a batch document is a known positive of a query but not its target."""
        data = self.prepared.sources[batch.source]
        mask = torch.zeros(len(batch.rows), len(doc_ids), dtype=torch.bool)
        for i, row in enumerate(batch.rows):
            known = set(data.examples[row].known)
            for j, doc in enumerate(doc_ids):
                if j != i * group and doc in known:
                    mask[i, j] = True
        return mask

    def train_step(self) -> StepStats:
        """One optimizer step over ``grad_accum`` micro-batches."""
        start = time.perf_counter()
        self.student.model.train()
        total, tokens = 0.0, 0
        parts: dict[str, float] = {}
        sources: Counter[str] = Counter()
        for _ in range(self.config.grad_accum):
            batch, self.position = self.plan.at(self.position)
            sources[batch.source] += 1
            loss, p, n = self.micro_batch(batch)
            (loss / self.config.grad_accum).backward()
            total += float(loss.detach()) / self.config.grad_accum
            tokens += n
            for k, v in p.items():
                parts[k] = parts.get(k, 0.0) + v / self.config.grad_accum
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        seconds = time.perf_counter() - start
        self.elapsed += seconds
        self.tokens += tokens
        return StepStats(total, parts, tokens, seconds, sources)

    # ------------------------------------------------------------------ the loop

    def fit(self, stop_at: int | None = None) -> None:
        """Train to ``max_steps`` (or ``stop_at``), validating and checkpointing on schedule."""
        cfg = self.config
        end = min(cfg.max_steps, stop_at if stop_at is not None else cfg.max_steps)
        if self.step == 0 and cfg.eval_every and self.validator is not None:
            self.validate()
        last_save = time.monotonic()
        window: list[StepStats] = []
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            desc="training",
            unit="step",
            disable=not cfg.progress,
            dynamic_ncols=True,
        )
        with bar, self._signals():
            while self.step < end and not self._stop:
                stats = self.train_step()
                window.append(stats)
                bar.update(1)
                if self.step % LOG_EVERY == 0 or self.step == end:
                    self._log_window(window, bar)
                    window = []
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                    self.validate(bar)
                due = time.monotonic() - last_save >= 60 * cfg.checkpoint_minutes
                if self.step % cfg.checkpoint_every == 0 or due:
                    self.save()
                    last_save = time.monotonic()
            finished = self.step >= cfg.max_steps
            if finished and self.validator is not None and self.validated_at != self.step:
                self.validate(bar)
            self.save()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM or Ctrl-C (SIGINT): finish the current step, checkpoint, stop. A second
        Ctrl-C stops at once (the run then resumes from its last checkpoint)."""

        def stop(signum: int, frame: Any) -> None:
            if signum == signal.SIGINT and self._stop:
                raise KeyboardInterrupt
            self._stop = True
            tqdm.write(
                "stopping after this step, with a checkpoint (Ctrl-C again: stop now)",
                file=sys.stderr,
            )

        handled = (signal.SIGTERM, signal.SIGINT)
        try:
            previous = {sig: signal.signal(sig, stop) for sig in handled}
        except ValueError:  # not the main thread
            yield
            return
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _log_window(self, window: list[StepStats], bar: Any) -> None:
        if not window:
            return
        seconds = sum(s.seconds for s in window)
        tokens = sum(s.tokens for s in window)
        loss = sum(s.loss for s in window) / len(window)
        parts = {
            k: round(sum(s.parts[k] for s in window) / len(window), 4) for k in window[0].parts
        }
        micro_batches = sum((s.sources for s in window), Counter())
        record = {
            "event": "train",
            "step": self.step,
            "loss": round(loss, 4),
            **parts,
            "lr": self.scheduler.get_last_lr()[-1],
            "steps_per_s": round(len(window) / seconds, 4),
            "tokens_per_s": round(tokens / seconds, 1),
            "elapsed_s": round(self.elapsed, 1),
            "micro_batches": dict(sorted(micro_batches.items())),
        }
        self._history(record)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens / seconds:,.0f}")
        if bar.disable:  # no terminal (a background run): one plain line per window
            print(
                f"step {self.step}/{self.config.max_steps} loss {loss:.4f} "
                f"{record['steps_per_s']} steps/s {record['tokens_per_s']:,.0f} tokens/s "
                f"lr {record['lr']:.2e}",
                flush=True,
            )

    def validate(self, bar: Any = None) -> dict[str, float]:
        """Score the held-out queries; keep the model when it is the best so far."""
        if self.validator is None:
            return {}
        start = time.perf_counter()
        encoder = self.student.encoder(
            document_length=self.config.val_document_length or self.config.document_length,
            threads=self.config.threads,
            precision=self.config.precision,
        )
        try:
            metrics = self.validator.rerank(encoder)
        finally:
            self.student.model.train()
        self.validated_at = self.step
        key = f"ndcg@10@{self.config.dims[0]}"
        score = metrics.get(key, -math.inf)
        improved = score > self.best["score"]
        record = {
            "event": "validation",
            "step": self.step,
            **metrics,
            "best": improved,
            "seconds": round(time.perf_counter() - start, 1),
        }
        self._history(record)
        message = f"step {self.step}: validation {metrics}" + (" (best)" if improved else "")
        if bar is not None and not bar.disable:
            bar.write(message)
        else:
            print(message, flush=True)
        if improved:
            self.best = {"score": score, "step": self.step, "metrics": metrics}
            checkpoint.save(
                self.run_dir / BEST,
                {"model": self.student.model.state_dict(), "step": self.step, "metrics": metrics},
            )
            (self.run_dir / "best.json").write_text(json.dumps(self.best, indent=2) + "\n")
        return metrics

    def _history(self, record: dict[str, Any]) -> None:
        with (self.run_dir / "history.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"time": round(time.time(), 1), **record}) + "\n")

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        return {
            "model": self.student.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": checkpoint.capture_rng(),
            "step": self.step,
            "position": list(self.position),
            "best": self.best,
            "elapsed": self.elapsed,
            "tokens": self.tokens,
            "validated_at": self.validated_at,
            "config": self.config.to_dict(),
        }

    def save(self) -> None:
        checkpoint.save(self.run_dir / LAST, self.state())
        self._history({"event": "checkpoint", "step": self.step})

    def resume(self, state: dict[str, Any]) -> None:
        self.student.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng(state["rng"])
        self.step = int(state["step"])
        self.position = (int(state["position"][0]), int(state["position"][1]))
        self.best = dict(state["best"])
        self.elapsed = float(state["elapsed"])
        self.tokens = int(state.get("tokens", 0))
        self.validated_at = state.get("validated_at")
        self._history({"event": "resume", "step": self.step})
