"""The commands the server process sends a training worker, one class each.

Main → worker: (rid, command), pickled over a multiprocessing Pipe; rid is echoed in the reply.
Worker → main: ("reply", rid, ok, payload), payload a result or (field, message, code, params);
               ("frame", sid, frame_bytes, status[, status_dict, config]), unsolicited: the newest
               state of a session;
               ("state", sid, status_dict, config), a session's status after a tick without a frame,
               and before every reply; config None when unchanged since the last report, both
               None when the session is gone. A worker started with report=True sends these
               (and the frame's last two items): the server answers GET status from them.
               ("beat", time), about every second (worker.BEAT_EVERY_S), even while training.
A command's handler in worker.py is registered for its class (`@handles(Play)`), so a reader
follows a command from here to its one handler by name.

`read_only` commands leave a timeline preview showing; any other command returns the view to
the live session first (and cuts a long /step short).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import ClassVar, Literal

from app.schema import ConfigFields, SessionConfig


@dataclass(frozen=True)
class Command:
    sid: str
    read_only: ClassVar[bool] = False


@dataclass(frozen=True)
class Create(Command):
    """A new session, from a snapshot when `payload_json` (its payload's stored JSON) is given:
    the worker parses and checks it, so the server never parses or pickles a big payload."""

    cfg: SessionConfig
    payload_json: bytes | None = None


@dataclass(frozen=True)
class Delete(Command):
    pass


@dataclass(frozen=True)
class Status(Command):
    read_only: ClassVar[bool] = True


@dataclass(frozen=True)
class Play(Command):
    pass


@dataclass(frozen=True)
class Pause(Command):
    pass


@dataclass(frozen=True)
class Step(Command):
    """Train until the next epoch ends, then pause."""


@dataclass(frozen=True)
class Reset(Command):
    pass


@dataclass(frozen=True)
class Change(Command):
    """Merge the given fields into the session's current config (PATCH)."""

    fields: ConfigFields


StructureOpName = Literal["add_layer", "remove_layer", "add_unit", "remove_unit", "activation", "toggle_feature"]
STRUCTURE_OPS: tuple[StructureOpName, ...] = typing.get_args(StructureOpName)


@dataclass(frozen=True)
class StructureOp:
    """One structure button: `layer` for unit and activation ops, `activation`, `feature`."""

    op: StructureOpName
    layer: int | None = None
    activation: str | None = None
    feature: str | None = None


@dataclass(frozen=True)
class EditStructure(Command):
    edit: StructureOp


@dataclass(frozen=True)
class Regenerate(Command):
    """New data from a new data seed; the network stays."""

    data_seed: int


@dataclass(frozen=True)
class Recover(Command):
    """After divergence: a ten times lower learning rate, then a reset."""


@dataclass(frozen=True)
class Watch(Command):
    """The viewers' highest fps (0 = none) and gradient wish; `fresh` asks for a frame now."""

    fps: float
    gradients: bool
    fresh: bool = False
    read_only: ClassVar[bool] = True


@dataclass(frozen=True)
class Model(Command):
    """Weights, biases and activations; as JSON bytes (encoded in the worker, so the server's
    event loop never walks every number) unless a dict is asked for."""

    as_json: bool = True
    read_only: ClassVar[bool] = True


@dataclass(frozen=True)
class Data(Command):
    """The raw points; as JSON bytes unless a dict is asked for."""

    as_json: bool = True
    read_only: ClassVar[bool] = True


@dataclass(frozen=True)
class History(Command):
    read_only: ClassVar[bool] = True


@dataclass(frozen=True)
class Probe(Command):
    x: tuple[float, ...]
    snap: bool = True
    label: int | None = None


@dataclass(frozen=True)
class SetParam(Command):
    """Set W[layer][i, j], or the bias b[layer][j] when i is None."""

    layer: int
    i: int | None
    j: int
    value: float


@dataclass(frozen=True)
class AddPoint(Command):
    x: tuple[float, float]
    label: float


@dataclass(frozen=True)
class RemovePoint(Command):
    """Remove the point nearest to x."""

    x: tuple[float, float]


@dataclass(frozen=True)
class Upload(Command):
    """Replace the data with parsed CSV points."""

    x: list
    y: list
    problem: str
    classes: int


@dataclass(frozen=True)
class Timeline(Command):
    read_only: ClassVar[bool] = True


@dataclass(frozen=True)
class View(Command):
    """Show a checkpoint (training pauses) without changing the session; None: back to live."""

    epoch: int | None
    read_only: ClassVar[bool] = True


@dataclass(frozen=True)
class Resume(Command):
    """Continue from a checkpoint: the live session goes back to it."""

    epoch: int


@dataclass(frozen=True)
class Export(Command):
    """The snapshot payload of the session."""

    read_only: ClassVar[bool] = True
