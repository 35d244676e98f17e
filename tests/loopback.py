"""An in-process Flower Grid for tests: messages go straight to the real ClientApp (with its
codec mod) of each virtual node, whose `Context` persists across rounds as it does under the
Simulation Engine. It lets tests run the real server code for several rounds in seconds and
tamper with replies on their way back."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fedland.clients.app import app as client_app

Tamper = Callable[[int, Message], Message]


def identify_as_server() -> None:
    """What a ServerApp process knows about itself, needed to create messages."""
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0


class LoopbackGrid(Grid):
    def __init__(self, num_nodes: int, tamper: Tamper | None = None) -> None:
        identify_as_server()
        self.contexts = {
            node: Context(
                run_id=1,
                node_id=node,
                node_config={"partition-id": node - 1, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config={},
            )
            for node in range(1, num_nodes + 1)
        }
        self.tamper = tamper
        self.sent: list[Message] = []
        self.sent_config: list[dict] = []  # as sent (the client mod adds to the message)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout=None) -> Iterable[Message]:
        replies = []
        for message in messages:
            self.sent.append(message)
            self.sent_config.append(dict(message.content["config"]))
            node = message.metadata.dst_node_id
            try:
                reply = client_app(message, self.contexts[node])
            except Exception as error:  # the Simulation Engine turns this into an error reply
                reply = Message(Error(code=1, reason=repr(error)), reply_to=message)
            replies.append(self.tamper(node, reply) if self.tamper else reply)
        return replies

    def set_run(self, run) -> None:
        raise NotImplementedError

    @property
    def run(self):
        raise NotImplementedError

    def create_message(self, *args, **kwargs):
        raise NotImplementedError

    def push_messages(self, messages):
        raise NotImplementedError

    def pull_messages(self, message_ids):
        raise NotImplementedError
