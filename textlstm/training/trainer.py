"""The one training loop: optimiser and LR schedule, clipping, freeze→unfreeze of the embeddings,
an optional moving average of the weights, validation with early stopping on the objective's
score (macro-F1 for classifiers), atomic checkpoints and exact resume."""
from __future__ import annotations

import copy
import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write_text
from ..callbacks import Callback
from ..config import TrainConfig
from ..data.batching import EncodedDataset, bucket_batches, iterate, n_batches, padding_share
from ..errors import TextLSTMError, TrainingError
from ..model.network import TextLSTM
from . import distributed, precision
from .adversarial import regularised
from .averaging import weight_average
from .checkpoint import METRICS_LOG, check_fingerprint, load_checkpoint, metrics_lines, save_checkpoint
from .device import resolve_device, setup_threads
from .freezing import frozen_in_epoch, unfreeze_on_plateau
from .objectives import Classification, Objective
from .optim import effective_lr, make_optimizer, make_scheduler

log = logging.getLogger(__name__)


class TrainingInterrupted(TextLSTMError):
    """Raised after SIGINT/SIGTERM once a resumable checkpoint is written."""


@dataclass
class TrainState:
    """Everything besides tensors that a checkpoint restores."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # batches done in the current epoch (interrupted mid-epoch)
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    unfrozen_epoch: int | None = None
    stopped_early: bool = False
    partial_loss: float = 0.0  # sums over the steps done in the current epoch
    partial_tokens: int = 0


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float | None
    unfrozen_epoch: int | None
    stopped_early: bool
    padding_share: float


@contextmanager
def _stop_on_signals(trainer: "Trainer") -> Iterator[None]:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop(signal.Signals(signum).name)
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Trainer:
    """Trains a `TextLSTM` in place; the best weights (by validation macro-F1) are loaded into
    the model at the end. Construct, then call `fit()`; `fit(resume=True)` continues from the
    checkpoint in `checkpoint_dir`. The objective is classification into `n_labels` labels
    (`class_weights` optional) unless `objective` names another (`lm.LanguageModelling` trains a
    `lm.BiLM`, a module with `TextLSTM`'s `embedding` and `freeze_embeddings`).

    Under torchrun every process builds the same global batches (`batch_size * world_size`
    texts) and trains on its share through DistributedDataParallel; the loss is normalised by
    the global batch, so the update equals a single process's on the whole batch. Validation
    is split across ranks and gathered, so every rank takes the same early-stopping decisions;
    only rank 0 reports progress and writes checkpoints.
    """

    def __init__(self, model: TextLSTM, cfg: TrainConfig, train: EncodedDataset,
                 val: EncodedDataset | None = None, *, n_labels: int | None = None,
                 class_weights: torch.Tensor | None = None, objective: Objective | None = None,
                 checkpoint_dir: str | Path | None = None, fingerprint: dict[str, Any] | None = None,
                 callbacks: list[Callback] | None = None, freeze_encoder: bool = False,
                 unlabelled: EncodedDataset | None = None):
        if objective is None and n_labels is None:
            raise TypeError("Trainer needs n_labels (classification) or an objective")
        self.model, self.cfg, self.train_data, self.val_data = model, cfg, train, val
        self.freeze_encoder = freeze_encoder  # train.freeze also holds the recurrent layers
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.device = resolve_device(cfg.device)
        self.dist = distributed.join(self.device)
        self.fingerprint = {**(fingerprint or {}),
                            **({"world_size": self.dist.world_size} if self.dist.enabled else {}),
                            # a checkpoint holds the moving average only when it was on
                            **({"ema_decay": cfg.ema_decay} if cfg.ema_decay else {})}
        self.callbacks = (callbacks or []) if self.dist.is_main else []
        self.model.to(self.device)
        self.average = weight_average(model, cfg.ema_decay)  # validated and kept when on
        self._net: nn.Module | None = None
        self._net_frozen = False
        self.global_batch = cfg.batch_size * self.dist.world_size
        objective = objective or Classification(n_labels, train.labels, class_weights, cfg.label_smoothing)
        if hasattr(objective, "loss_from_logits"):  # classifiers: adversarial, VAT, entropy minimisation
            objective = regularised(objective, cfg, unlabelled, self.global_batch, self.dist)
        self.objective = objective.to(self.device)
        self.batches_per_epoch = n_batches(len(train), self.global_batch, cfg.bucket_chunk)
        self.lr = effective_lr(cfg, self.dist.world_size)
        self.optimizer = make_optimizer(model, cfg, self.lr)
        self.scheduler = make_scheduler(self.optimizer, cfg, cfg.epochs * self.batches_per_epoch)
        self.amp_dtype = precision.amp_dtype(self.device, cfg.amp)
        if cfg.amp and self.amp_dtype is None and self.dist.is_main:
            log.warning("train.amp: %s, so training stays in float32", "this CPU has no native bfloat16"
                        if self.device.type == "cpu" else f"no mixed precision on {self.device.type}")
        # Loss scaling only for float16; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.state = TrainState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stop_requested: str | None = None

    def request_stop(self, reason: str = "stop requested") -> None:
        self.stop_requested = reason

    # -- the loop -------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        setup_threads(self.cfg.threads)
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if resume:
            self._restore()
        else:
            torch.manual_seed(self.cfg.seed + self.dist.rank)  # ranks draw different dropout masks
        if self.lr != self.cfg.lr:
            for cb in self.callbacks:
                cb.on_info(f"learning rate {self.lr:.3g} ({self.cfg.lr_scaling} scaling of "
                           f"{self.cfg.lr:.3g} to a global batch of {self.global_batch})")
        with _stop_on_signals(self):
            while self.state.epoch < self.cfg.epochs and not self.state.stopped_early:
                self._run_epoch(self.state.epoch + 1)
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        elif self.average is not None and self.state.global_step:
            self.model.load_state_dict(self.average.module.state_dict())
        s = self.state
        return TrainResult(s.history, s.best_epoch, s.best_score if s.history and self.val_data else None,
                           s.unfrozen_epoch, s.stopped_early,
                           float(np.mean([h["padding_share"] for h in s.history])) if s.history else 0.0)

    def _set_frozen_for(self, epoch: int) -> None:
        s, frozen_now = self.state, self.model.embeddings_frozen
        fresh = epoch == 1 and s.step_in_epoch == 0 and not s.history
        frozen = frozen_in_epoch(self.cfg, epoch, frozen_now, fresh)
        if frozen_now and not frozen and s.unfrozen_epoch is None:
            s.unfrozen_epoch = epoch
        self.model.freeze_embeddings(frozen, self.freeze_encoder)

    def _run_epoch(self, epoch: int) -> None:
        cfg, s = self.cfg, self.state
        self._set_frozen_for(epoch)
        rng = np.random.default_rng([cfg.seed, epoch])
        lengths = self.train_data.lengths
        batches = bucket_batches(lengths, self.global_batch, cfg.bucket_chunk, rng)
        for cb in self.callbacks:
            cb.on_epoch_start(epoch, len(batches), self.model.embeddings_frozen)
        start = time.perf_counter()
        self.model.train()
        for step, batch in enumerate(batches[s.step_in_epoch:], start=s.step_in_epoch + 1):
            loss, tokens, stop = self.train_step(batch, epoch, step)
            s.partial_loss += loss
            s.partial_tokens += tokens
            s.step_in_epoch, s.global_step = step, s.global_step + 1
            for cb in self.callbacks:
                cb.on_step(epoch, step, loss, tokens, self.optimizer.param_groups[0]["lr"])
            if cfg.eval_every and s.global_step % cfg.eval_every == 0 and step < len(batches):
                self._validate(epoch, mid_epoch=True)
            if stop or (self.stop_requested and not self.dist.enabled):  # ranks stop together
                self._checkpoint()
                raise TrainingInterrupted(
                    f"Training stopped by {self.stop_requested or 'a signal to another process'} at "
                    f"epoch {epoch}, step {step}; " + ("a checkpoint was saved. Continue with --resume."
                                                       if self.checkpoint_dir else "no checkpoint directory: nothing was saved."))
        seconds = time.perf_counter() - start
        local = [distributed.shard(b, self.dist) for b in batches]
        record = {"epoch": epoch, "train_loss": s.partial_loss / max(1, len(batches)),
                  "lr": self.optimizer.param_groups[0]["lr"], "unfrozen": not self.model.embeddings_frozen,
                  "padding_share": padding_share([b for b in local if len(b)], lengths), "seconds": seconds,
                  "tokens_per_s": s.partial_tokens / seconds if seconds > 0 else 0.0}
        validation, score = self._validate(epoch)
        record.update(validation)
        s.history.append(record)
        s.epoch, s.step_in_epoch, s.partial_loss, s.partial_tokens = epoch, 0, 0.0, 0
        self._after_validation(epoch, score)
        for cb in self.callbacks:
            cb.on_epoch_end(record)
        self._checkpoint()

    def _network(self) -> nn.Module:
        """What a step runs: the model, or DDP around it under torchrun — re-made when the
        embeddings are frozen or unfrozen, as DDP fixes its trained parameters when built."""
        frozen = self.model.embeddings_frozen
        if self._net is None or self._net_frozen != frozen:
            self._net, self._net_frozen = distributed.wrap(self.model, self.dist, self.device), frozen
            self._net.train()
        return self._net

    def train_step(self, batch: np.ndarray, epoch: int = 1, step: int = 1) -> tuple[float, int, bool]:
        """One update on a global batch (indices into the training data), from this rank's
        share of it. Returns the batch's mean loss and real tokens over all ranks, and whether
        any rank was asked to stop. `epoch` and `step` only name the batch in errors.
        `fit` calls it; benchmarks/speed.py times it."""
        local, weight = distributed.shard(batch, self.dist), 1.0
        if len(local) == 0:  # fewer texts than ranks: step on one text with weight 0
            local, weight = batch[:1], 0.0
        _, ids, lens, y = next(iterate(self.train_data, [local]))
        ids, y = ids.to(self.device), None if y is None else y.to(self.device)
        if hasattr(self.objective, "begin_step"):
            self.objective.begin_step(epoch, step)
        with precision.autocast(self.device, self.amp_dtype):
            loss = self.objective.loss(self._network(), ids, lens, y, batch, weight)
            penalty = torch.zeros((), device=self.device)
            if self.cfg.l1:
                penalty = self.cfg.l1 * sum(p.abs().sum() for n, p in self.model.named_parameters()
                                            if p.dim() > 1 and not n.endswith("embedding.weight"))
        value, tokens, stops = distributed.all_sum(
            [float(loss.detach()), float(lens.sum()) * weight, float(bool(self.stop_requested))], self.dist)
        value += float(penalty.detach())
        if not math.isfinite(value):
            raise self._diverged(f"Non-finite loss ({value})", epoch, step, batch)
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks; each rank's share of the global mean is scaled back up.
        self.scaler.scale(loss * self.dist.world_size + penalty).backward()
        if self.cfg.clip_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._check_weights(epoch, step, batch)
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        if self.average is not None:
            self.average.update_parameters(self.model)
        return value, int(tokens), stops > 0

    def _check_weights(self, epoch: int, step: int, batch: np.ndarray) -> None:
        """After an update every trained weight must be finite (one sum per tensor; a NaN or an
        infinity anywhere makes its tensor's sum non-finite)."""
        trained = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if trained and torch.isfinite(torch.stack([p.detach().sum() for _, p in trained]).sum()):
            return
        bad = [n for n, p in trained if not torch.isfinite(p.detach()).all()]
        if bad:
            raise self._diverged(f"Non-finite weights ({', '.join(bad[:3])}"
                                 f"{', ...' if len(bad) > 3 else ''}) after the update", epoch, step, batch)

    def _diverged(self, what: str, epoch: int, step: int, batch: np.ndarray) -> TrainingError:
        return TrainingError(
            f"{what} at epoch {epoch}, step {step} (batch of examples "
            f"{', '.join(map(str, batch[:8]))}{', ...' if len(batch) > 8 else ''}). "
            f"{'The last checkpoint is intact' if self.checkpoint_dir else 'Nothing was saved'}; "
            "lower train.lr or set train.clip_norm.")

    # -- validation, early stopping, freezing ----------------------------------------------
    def _validate(self, epoch: int, mid_epoch: bool = False) -> tuple[dict[str, Any], float | None]:
        """The objective's validation record and score (None without validation data)."""
        if self.val_data is None or len(self.val_data) == 0:
            return {}, None
        record, score = self.objective.validate(self._evaluated(), self.val_data, self.device, self.dist)
        self._keep_if_best(epoch, score)
        for cb in self.callbacks:
            cb.on_validation({"epoch": epoch, "mid_epoch": mid_epoch, **record})
        return record, score

    def _keep_if_best(self, epoch: int, score: float) -> bool:
        if not math.isfinite(score) or score <= self.state.best_score:
            return False
        self.state.best_score, self.state.best_epoch = score, epoch
        self.best_weights = copy.deepcopy(self._evaluated().state_dict())
        return True

    def _evaluated(self) -> nn.Module:
        """The weights that validation scores and training keeps: the moving average when on."""
        return self.model if self.average is None else self.average.module

    def _after_validation(self, epoch: int, score: float | None) -> None:
        s, cfg = self.state, self.cfg
        if score is None:
            s.best_epoch = epoch
            self.best_weights = None  # no validation: the last weights (or their average) are the result
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(score)
        if s.best_epoch == epoch:
            s.bad_epochs = 0
            return
        if unfreeze_on_plateau(cfg, self.model.embeddings_frozen):
            self.model.freeze_embeddings(False, self.freeze_encoder)
            s.unfrozen_epoch = epoch + 1
            s.bad_epochs = 0
            return
        s.bad_epochs += 1
        if cfg.patience and s.bad_epochs >= cfg.patience:
            s.stopped_early = True
            log.info("early stop after epoch %d: no validation gain for %d epochs", epoch, s.bad_epochs)

    # -- checkpoints -----------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """Rank 0 writes; every rank's random state goes in, so each resumes its own."""
        if self.checkpoint_dir is None:
            return
        s = self.state
        rngs = distributed.gather(torch.get_rng_state(), self.dist)
        cuda = self.device.type == "cuda"
        cuda_rngs = distributed.gather(torch.cuda.get_rng_state(self.device), self.dist) if cuda else []
        if self.dist.is_main:
            payload = {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "torch_rng": rngs[0], "torch_rng_ranks": rngs, "frozen": self.model.embeddings_frozen,
                "best_weights": self.best_weights or {}, "fingerprint": self.fingerprint,
                "state": {k: getattr(s, k) for k in TrainState.__dataclass_fields__},
            }
            if cuda:
                payload["cuda_rng_ranks"] = cuda_rngs
            if self.average is not None:
                payload["average"] = self.average.state_dict()
            save_checkpoint(self.checkpoint_dir, payload)
            # the run log beside it, for `tail -f` and plotting while training; a resumed run
            # rewrites it from the checkpoint's history, so it never holds an epoch twice
            atomic_write_text(self.checkpoint_dir / METRICS_LOG, metrics_lines(s.history))
        distributed.barrier(self.dist)  # no rank moves on (or exits) before the file is complete

    def _restore(self) -> None:
        if self.checkpoint_dir is None:
            raise TrainingError("Resuming needs a checkpoint directory.")
        ck = load_checkpoint(self.checkpoint_dir)
        check_fingerprint(ck.get("fingerprint", {}), self.fingerprint, self.checkpoint_dir)
        self.model.load_state_dict(ck["model"])
        self.model.freeze_embeddings(ck["frozen"], self.freeze_encoder)
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        torch.set_rng_state(ck.get("torch_rng_ranks", [ck["torch_rng"]])[self.dist.rank])
        if ck.get("cuda_rng_ranks") and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["cuda_rng_ranks"][self.dist.rank], self.device)
        if self.average is not None:
            self.average.load_state_dict(ck["average"])
        self.best_weights = ck["best_weights"] or None
        self.state = TrainState(**ck["state"])
