"""RecommenderModule: the "recommender" family, user taste x track embedding -> score.

    score(user, track, context) = < taste(history(user), context), embed(track) > / tau

with both vectors built per head and unit-normalised (`embedder.heads_to_vector`), so the score
is the mean cosine over H heads divided by a temperature. Training is Mult-DAE style on implicit
feedback: each user's history is partly hidden (`history_dropout`) and the model is asked for
the whole of it with a softmax over the full catalog (or over the positives plus `negatives`
uniform samples: a sampled softmax, for catalogs too large to score whole every step). Every
head has its own loss and dropout masks, so the heads are a small ensemble trained in one pass.

Warm tracks (played in training) use their ID vector and their content; cold tracks, and tracks
from outside the catalog (`embed_features`, e.g. freshly generated ones), use content alone.

The catalog travels inside the checkpoint: content features (standardised, with the mean/std
that standardise new tracks), which tracks are known, each known user's history, and the track
and user keys (and the tracks' names where the data has them: Last.fm's artists), so
`RecommenderModule.load(ckpt)` can recommend with no dataset at hand.

With `text=True` the model also reads listeners who describe what they like in words: a ridge
map from sentence vectors (all-MiniLM-L6-v2, `text.py`) to tastes, fitted on the catalog's words
after every validation epoch and kept in the `text_map` buffer (`text_taste.py`), so the
checkpoint carries it; `taste_of_text(texts)` uses it.

Logged: `train/loss`, and per epoch `val/recall@10`, `val/ndcg@10`, `val/recall@20`,
`val/ndcg@20` (full ranking, the user's training tracks masked) and the same for `test/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from cadenza.errors import CadenzaError, ConfigError
from cadenza.metrics.ranking import hits_matrix, ndcg_at_k, recall_at_k, top_k_items
from cadenza.models.base import CadenzaModule, check_float, check_int
from cadenza.recommend.embedder import TrackEmbedder, heads_to_vector
from cadenza.recommend.taste import TasteEncoder
from cadenza.recommend.text import TEXT_DIM, check_description, sentence_embedder
from cadenza.recommend.text_taste import TextMap, TextMapFitter, text_pairs

FAMILY = "recommender"
KS = (10, 20)


class RecommenderModule(CadenzaModule):
    family = FAMILY
    checkpoint_kind = "recommender"
    checkpoint_hint = " (train one with `cadenza-train experiment=lastfm_recommender`)"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        feature_dim: int = 0,
        n_history: int = 0,
        item_keys: list[str] | None = None,
        user_keys: list[str] | None = None,
        contexts: list[str] | None = None,
        feature_kind: str | None = None,
        feature_names: list[str] | None = None,
        item_names: list[str] | None = None,
        dim: int = 256,
        heads: int = 3,
        hidden: int = 512,
        tau: float = 0.1,
        history_dropout: float = 0.5,
        id_dropout: float = 0.1,
        context_prob: float = 0.0,
        negatives: int | None = None,
        text: bool = False,
        text_max_pairs: int | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    ) -> None:
        super().__init__()
        if text_max_pairs is not None:
            check_int("model.text_max_pairs", text_max_pairs, minimum=5)
        for key, value in (("n_users", n_users), ("n_items", n_items), ("dim", dim),
                           ("heads", heads), ("hidden", hidden)):  # fmt: skip
            check_int(f"model.{key}", value)
        check_int("model.feature_dim", feature_dim, minimum=0)
        check_float("model.tau", tau, minimum=1e-4, maximum=10.0)
        check_float("model.history_dropout", history_dropout, maximum=0.95)
        check_float("model.id_dropout", id_dropout, maximum=1.0)
        check_float("model.context_prob", context_prob, maximum=1.0)
        if negatives is not None:
            check_int("model.negatives", negatives)
        for name, keys, n in (("item_keys", item_keys, n_items), ("user_keys", user_keys, n_users),
                              ("item_names", item_names, n_items)):  # fmt: skip
            if keys is not None and len(keys) != n:
                raise ConfigError(f"model.{name} has {len(keys)} entries for {n}")
        if feature_names is not None and len(feature_names) != feature_dim:
            raise ConfigError(f"{len(feature_names)} feature_names for feature_dim {feature_dim}")
        self.set_optimization(optimizer)
        self.save_hyperparameters(ignore=["optimizer"])
        # A known listener's row by ID, looked up per request (a list's index() walked them all).
        self.user_rows = {str(u): i for i, u in enumerate(user_keys or [])}
        self.contexts = list(contexts or [])
        self.tracks = TrackEmbedder(n_items, feature_dim, dim, heads, hidden)
        self.taste = TasteEncoder(n_items, dim, heads, n_contexts=len(self.contexts))
        # The catalog (filled by `attach` before training, restored from the state dict after).
        self.register_buffer("item_features", torch.zeros(n_items, feature_dim))
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.register_buffer("item_known", torch.zeros(n_items, dtype=torch.bool))
        self.register_buffer("item_context", torch.full((n_items,), -1, dtype=torch.long))
        self.register_buffer("history_indptr", torch.zeros(n_users + 1, dtype=torch.long))
        self.register_buffer("history_items", torch.zeros(n_history, dtype=torch.long))
        self.register_buffer("history_weights", torch.zeros(n_history))
        # text=True: a map from sentence vectors to tastes (text_taste.py), refitted after every
        # validation epoch so each checkpoint carries the map that matches its weights.
        if not isinstance(text, bool):
            raise ConfigError(f"model.text must be true or false, got {text!r}")
        self.register_buffer(
            "text_map", torch.zeros(TEXT_DIM + 1, heads * dim) if text else None
        )  # [E + 1, H*D]: W, then the bias row
        self._text_pairs: tuple[np.ndarray, np.ndarray, list[str]] | None = None
        self._text_fitter: TextMapFitter | None = None

    # --- the catalog ----------------------------------------------------------------------
    def attach(self, catalog: Any) -> None:
        """Copy a `Catalog` (see datamodule.py) into the buffers; sizes must match."""
        h = sp.csr_matrix(catalog.history)
        sources = {
            "item_features": catalog.features, "feature_mean": catalog.feature_mean,
            "feature_std": catalog.feature_std, "item_known": catalog.known,
            "item_context": catalog.item_context, "history_indptr": h.indptr,
            "history_items": h.indices, "history_weights": h.data,
        }  # fmt: skip
        for name, value in sources.items():
            buf = getattr(self, name)
            value = torch.as_tensor(np.asarray(value)).to(buf.dtype)
            if value.shape != buf.shape:
                raise ConfigError(
                    f"catalog {name} is {tuple(value.shape)}, the model was built for "
                    f"{tuple(buf.shape)}: build the model from this data"
                )
            buf.copy_(value)
        if self.hparams.get("text"):
            self._text_pairs = text_pairs(catalog, self.hparams.get("text_max_pairs"))
            self._text_fitter = None

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and dm is not None and hasattr(dm, "catalog"):
            self.attach(dm.catalog)

    def holds_plays(self, user: str) -> bool:
        """Whether this model still holds plays of a known listener (none once forgotten)."""
        row = self.user_rows.get(str(user))
        return row is not None and bool(self.history_indptr[row + 1] > self.history_indptr[row])

    def history(self, users: torch.Tensor) -> torch.Tensor:
        """Known users' training histories as dense weights [B, I]."""
        out = torch.zeros(len(users), self.hparams.n_items, device=self.item_features.device)
        for row, u in enumerate(users.tolist()):
            lo, hi = self.history_indptr[u], self.history_indptr[u + 1]
            out[row, self.history_items[lo:hi]] = self.history_weights[lo:hi]
        return out

    # --- embeddings and scores ------------------------------------------------------------
    def catalog_embeddings(self, id_dropout: float = 0.0, content_only: bool = False
                           ) -> torch.Tensor:  # fmt: skip
        """Every catalog track [I, H*D]; unknown tracks (all of them when `content_only`, the
        content-based recommender) from content alone."""
        known = self.item_known & (not content_only)
        if id_dropout > 0:
            known = known & (torch.rand_like(known, dtype=torch.float) >= id_dropout)
        ids = torch.arange(self.hparams.n_items, device=known.device)
        return heads_to_vector(self.tracks(self._features(), ids, known))

    def track_embeddings(self, ids: torch.Tensor, content_only: bool = False) -> torch.Tensor:
        """Some catalog tracks [N] -> [N, H*D], as `catalog_embeddings` gives them."""
        known = self.item_known[ids] & (not content_only)
        features = self.item_features[ids] if self.hparams.feature_dim > 0 else None
        return heads_to_vector(self.tracks(features, ids, known))

    def embed_features(self, features: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Tracks from outside the catalog, by raw content features [N, F] -> [N, H*D]."""
        if self.tracks.content is None:
            raise CadenzaError("this recommender was trained without content features, so it "
                               "cannot embed tracks outside its catalog")  # fmt: skip
        x = torch.as_tensor(np.asarray(features, np.float32), device=self.item_features.device)
        if x.ndim != 2 or x.shape[1] != self.hparams.feature_dim:
            raise CadenzaError(f"features must be [N, {self.hparams.feature_dim}], got "
                               f"{tuple(x.shape)}")  # fmt: skip
        return heads_to_vector(self.tracks((x - self.feature_mean) / self.feature_std))

    def taste_of(self, history: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Taste vectors [B, H*D] from histories [B, I] (known or new users alike)."""
        return heads_to_vector(self.taste(history, context))

    def user_taste(self, users: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.taste_of(self.history(users), context)

    def score_users(
        self, users: torch.Tensor, tracks: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """score(user, tracks, context): known users [B] x track embeddings [N, H*D] -> [B, N];
        tracks from `catalog_embeddings()` or `embed_features()` (cold or generated)."""
        return self.score(self.user_taste(users, context), tracks)

    def score(self, tastes: torch.Tensor, tracks: torch.Tensor) -> torch.Tensor:
        """[B, H*D] x [N, H*D] -> [B, N]: the mean cosine over heads, over tau."""
        return tastes @ tracks.T / self.hparams.tau

    # --- text -> taste ---------------------------------------------------------------------
    def taste_of_text(self, texts: list[str]) -> torch.Tensor:
        """Tastes [B, H*D] of listeners who describe what they like in words (`text_taste.py`)."""
        if self.text_map is None:
            raise ConfigError("this recommender was trained without text (model.text=false), so "
                              "it cannot read a description; train one with model.text=true "
                              "(lastfm_recommender and styles_recommender do)")  # fmt: skip
        if not bool(self.text_map.any()):
            raise CadenzaError("this checkpoint's text map was never fitted (it is fitted after "
                               "each validation epoch)")  # fmt: skip
        texts = [check_description(t) for t in texts]
        x = torch.from_numpy(sentence_embedder().encode(texts)).to(self.text_map)
        y = x @ self.text_map[:-1] + self.text_map[-1]  # [B, H*D]
        return heads_to_vector(y.view(len(texts), self.hparams.heads, -1))

    @torch.no_grad()
    def fit_text_map(self) -> TextMap:
        """Fit text -> taste on the attached catalog's words and this model's current tastes."""
        if self._text_pairs is None:
            raise CadenzaError("fit_text_map needs a catalog: attach() one first")
        if self._text_fitter is None:  # the sentences never change: embedded once per fit
            self._text_fitter = TextMapFitter(sentence_embedder().encode(self._text_pairs[2]))
        fitted = self._text_fitter.fit(self.text_targets())
        self.text_map.copy_(torch.from_numpy(fitted.weights))
        return fitted

    @torch.no_grad()
    def text_targets(self) -> np.ndarray:
        """The tastes the text map is fitted to, in `_text_pairs` order [U' + I', H*D]: each
        described listener's from their training history, then each described track's as the
        taste of a listener who played only it."""
        users, items, _ = self._text_pairs
        n, dev = self.hparams.n_items, self.item_features.device
        targets = []
        for i in range(0, len(users), 512):
            targets.append(self.user_taste(torch.as_tensor(users[i : i + 512], device=dev)))
        for i in range(0, len(items), 512):
            ids = torch.as_tensor(items[i : i + 512], device=dev)
            targets.append(self.taste_of(F.one_hot(ids, n).float()))  # one track played
        return torch.cat(targets).double().cpu().numpy()

    def on_validation_epoch_end(self) -> None:
        if self.text_map is None or self._text_pairs is None or self.trainer.sanity_checking:
            return
        fitted = self.fit_text_map()
        self.log("val/text_cosine", fitted.heldout_cosine, on_epoch=True, sync_dist=True)

    def _features(self) -> torch.Tensor | None:
        return self.item_features if self.hparams.feature_dim > 0 else None

    # --- training -------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        p = self.hparams
        hist = batch["history"]
        target = (hist > 0).float()  # [B, I]
        context = None
        if self.contexts and p.context_prob > 0:
            # Some users are asked for one context at a time (that of a random track of theirs),
            # and only their tracks of that context count as answers.
            pick = torch.multinomial(target, 1).squeeze(1)  # [B]
            context = self.item_context[pick]
            context[torch.rand(len(pick), device=hist.device) >= p.context_prob] = -1
            asked = (context >= 0).unsqueeze(1)
            in_context = (self.item_context == context.unsqueeze(1)).float()
            target = torch.where(asked, target * in_context, target)
        taste = self.taste(hist, context, dropout=p.history_dropout)  # [B, H, D]
        known = self.item_known & (torch.rand(p.n_items, device=hist.device) >= p.id_dropout)
        ids = torch.arange(p.n_items, device=hist.device)
        items = self.tracks(self._features(), ids, known)  # [I, H, D]
        taste, items = F.normalize(taste, dim=-1), F.normalize(items, dim=-1)
        if p.negatives is not None and p.negatives < p.n_items:
            # Sampled softmax: the batch's positives plus uniform negatives share one candidate
            # set (uniform sampling needs no log-q correction beyond a constant).
            neg = torch.randint(0, p.n_items, (p.negatives,), device=hist.device)
            cand = torch.unique(torch.cat([target.sum(0).nonzero().squeeze(1), neg]))
            items, target = items[cand], target[:, cand]
        logits = torch.einsum("bhd,ihd->hbi", taste, items) / p.tau  # [H, B, I]
        nll = -(logits.log_softmax(-1) * target).sum(-1) / target.sum(-1).clamp(min=1)
        loss = nll.mean()
        self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=hist.shape[0])
        return loss

    def _rank_step(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        scores = self.score(self.taste_of(batch["history"]), self.catalog_embeddings())
        scores = scores.masked_fill(batch["seen"] > 0, float("-inf")).double().cpu().numpy()
        heldout = sp.csr_matrix(batch["heldout"].cpu().numpy())
        n_pos = heldout.getnnz(axis=1)
        hits = hits_matrix(top_k_items(scores, max(KS)), heldout)
        for k in KS:
            for name, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k)):
                value = float(fn(hits, n_pos, k).mean())
                self.log(f"{stage}/{name}@{k}", value, on_step=False, on_epoch=True,
                         batch_size=len(n_pos), sync_dist=True)  # fmt: skip

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._rank_step("val", batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._rank_step("test", batch)
