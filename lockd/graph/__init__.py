"""The dependency graph of a lock: why each package is in it (pure).

``model`` holds the recorded shape (roots, edges, ``lockd.graph/1``),
``build`` derives it from what the locked packages declare, ``paths`` reads
it (``lockd why``, pip-compile's ``via``), and ``explain`` says why a pin moved.
"""

from .build import conda_graph, pip_graph
from .explain import InputChange, Reason, explain_moves, input_changes, reason
from .model import GRAPH_FORMAT, DirectInput, Edge, Graph, Root
from .paths import DependencyPath, Hop, Paths, paths_to, shortest_path, via

__all__ = [
    "GRAPH_FORMAT",
    "DependencyPath",
    "DirectInput",
    "Edge",
    "Graph",
    "Hop",
    "InputChange",
    "Paths",
    "Reason",
    "Root",
    "conda_graph",
    "explain_moves",
    "input_changes",
    "paths_to",
    "pip_graph",
    "reason",
    "shortest_path",
    "via",
]
