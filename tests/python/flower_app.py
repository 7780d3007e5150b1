"""A small Flower app (numpy models, sklearn's real data sets, non-IID splits), run the
same way in plaintext and over heinfer's secure aggregation: the model code below does
not know which. Used by tests/python/test_flower.py and bench/secagg_flower.py."""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from flwr.client import ClientApp, NumPyClient
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.simulation import run_simulation


def dataset(name: str):
    """(x_train, y_train, x_test, y_test), standardized, split with a fixed seed."""
    d = load_breast_cancer() if name == "cancer" else load_digits()
    x, y = d.data.astype(np.float64), d.target
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    s = StandardScaler().fit(xtr)
    return s.transform(xtr), ytr, s.transform(xte), yte


def split_non_iid(y: np.ndarray, clients: int, alpha: float = 0.5, seed: int = 0) -> List[np.ndarray]:
    """Dirichlet(alpha) label skew: each client's class mix differs (every client gets
    at least a few samples)."""
    rng = np.random.default_rng(seed)
    parts: List[List[int]] = [[] for _ in range(clients)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = (np.cumsum(rng.dirichlet([alpha] * clients)) * len(idx)).astype(int)[:-1]
        for i, chunk in enumerate(np.split(idx, cuts)):
            parts[i] += chunk.tolist()
    return [np.array(sorted(p)) for p in parts]


# Models: a list of numpy arrays, a forward pass and one epoch of minibatch SGD.

def init(name: str, seed: int = 0) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    if name == "cancer":
        return [np.zeros(30), np.zeros(1)]
    return [rng.normal(0, 0.1, (64, 16)), np.zeros(16), rng.normal(0, 0.1, (16, 10)), np.zeros(10)]


def predict(name: str, w: List[np.ndarray], x: np.ndarray) -> np.ndarray:
    if name == "cancer":
        return (x @ w[0] + w[1][0] > 0).astype(int)
    h = np.maximum(x @ w[0] + w[1], 0)
    return np.argmax(h @ w[2] + w[3], axis=1)


def sgd_epoch(name: str, w: List[np.ndarray], x, y, rng, lr: float, batch: int = 16) -> List[np.ndarray]:
    w = [a.copy() for a in w]
    for b in np.array_split(rng.permutation(len(y)), max(1, len(y) // batch)):
        xb, yb = x[b], y[b]
        if name == "cancer":
            p = 1 / (1 + np.exp(-(xb @ w[0] + w[1][0])))
            g = p - yb
            w[0] -= lr * xb.T @ g / len(b)
            w[1] -= lr * np.array([g.mean()])
        else:
            z = xb @ w[0] + w[1]
            h = np.maximum(z, 0)
            logits = h @ w[2] + w[3]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            p[np.arange(len(b)), yb] -= 1
            p /= len(b)
            gh = p @ w[2].T * (z > 0)
            w[2] -= lr * h.T @ p
            w[3] -= lr * p.sum(axis=0)
            w[0] -= lr * xb.T @ gh
            w[1] -= lr * gh.sum(axis=0)
    return w


def accuracy(name: str, w, x, y) -> float:
    return float((predict(name, w, x) == y).mean())


class ModelClient(NumPyClient):
    def __init__(self, name: str, pid: int, x, y, lr: float, epochs: int, drop=frozenset()):
        self.name, self.pid, self.x, self.y, self.lr, self.epochs = name, pid, x, y, lr, epochs
        self.drop = drop

    def fit(self, parameters, config):
        if (self.pid, int(config["round"])) in self.drop:
            raise RuntimeError(f"client {self.pid} drops out of round {config['round']}")
        rng = np.random.default_rng([self.pid, int(config["round"])])
        w = [np.asarray(a) for a in parameters]
        for _ in range(self.epochs):
            w = sgd_epoch(self.name, w, self.x, self.y, rng, self.lr)
        return w, len(self.y), {}


SETTINGS = {"cancer": dict(lr=0.05, epochs=1), "digits": dict(lr=0.1, epochs=2)}


def client_app(name: str, clients: int, mods=(), drop=frozenset()) -> ClientApp:
    """``drop``: (partition, round) pairs whose fit fails (a client that drops out)."""
    xtr, ytr, _, _ = dataset(name)
    parts = split_non_iid(ytr, clients)

    def client_fn(context: Context):
        pid = int(context.node_config["partition-id"])
        return ModelClient(name, pid, xtr[parts[pid]], ytr[parts[pid]], drop=frozenset(drop),
                           **SETTINGS[name]).to_client()

    return ClientApp(client_fn=client_fn, mods=list(mods))


def fedavg(name: str, clients: int, history: Dict[int, float]) -> FedAvg:
    """Plain FedAvg: all clients every round, centralized accuracy on the test split
    recorded in ``history`` (round → accuracy)."""
    _, _, xte, yte = dataset(name)

    def evaluate(rnd, parameters, config):
        history[rnd] = accuracy(name, parameters, xte, yte)
        return 0.0, {"accuracy": history[rnd]}

    return FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=clients, min_available_clients=clients,
                  initial_parameters=ndarrays_to_parameters(init(name)), evaluate_fn=evaluate,
                  on_fit_config_fn=lambda rnd: {"round": rnd})


def run(strategy, client: ClientApp, clients: int, rounds: int) -> None:
    """One Flower simulation (Ray) on this machine."""
    here = os.path.dirname(os.path.abspath(__file__))
    # Ray's workers import this module to run client_fn.
    os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    server = ServerApp(server_fn=lambda ctx: ServerAppComponents(strategy=strategy,
                                                                 config=ServerConfig(num_rounds=rounds)))
    run_simulation(server_app=server, client_app=client, num_supernodes=clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False,
                                                 "logging_level": logging.WARNING}})


def signer_seed(secret: bytes, pid: int) -> bytes:
    """The enrolled client ``pid``'s signing seed, for tests (a deployment gives each
    SuperNode its own key file)."""
    return hashlib.sha256(secret + pid.to_bytes(4, "little")).digest()
