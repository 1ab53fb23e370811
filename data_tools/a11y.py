"""Compact UI elements from Android-Control accessibility trees (android_env ``AndroidAccessibilityForest`` protos)."""

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

from android_env.proto.a11y.android_accessibility_forest_pb2 import AndroidAccessibilityForest


@dataclass(frozen=True)
class Element:
    """One UI element: ``bounds`` is [left, top, right, bottom] in screen pixels."""

    bounds: List[int]
    text: str
    content_description: str
    tooltip: str
    resource_id: str
    class_name: str
    clickable: bool

    @property
    def area(self) -> int:
        left, top, right, bottom = self.bounds
        return max(0, right - left) * max(0, bottom - top)

    @property
    def label(self) -> str:
        """Text shown to a user (text, else tooltip); empty when the element only has a content description."""
        return self.text or self.tooltip

    def contains(self, x: float, y: float) -> bool:
        left, top, right, bottom = self.bounds
        return left <= x <= right and top <= y <= bottom

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def elements_from_forest(serialized: bytes) -> List[Element]:
    """Elements of every window of a serialized forest that carry text, a description, a resource id or a click.

    Raises ``google.protobuf.message.DecodeError`` when ``serialized`` is not a forest.
    """
    forest = AndroidAccessibilityForest()
    forest.ParseFromString(serialized)
    elements = []
    for window in forest.windows:
        for node in window.tree.nodes:
            if not (
                node.text
                or node.content_description
                or node.tooltip_text
                or node.view_id_resource_name
                or node.is_clickable
            ):
                continue
            rect = node.bounds_in_screen
            elements.append(
                Element(
                    bounds=[rect.left, rect.top, rect.right, rect.bottom],
                    text=node.text,
                    content_description=node.content_description,
                    tooltip=node.tooltip_text,
                    resource_id=node.view_id_resource_name,
                    class_name=node.class_name,
                    clickable=node.is_clickable,
                )
            )
    return elements


def element_at(x: float, y: float, elements: Sequence[Element]) -> Optional[Element]:
    """The smallest element enclosing (x, y) that has a text, tooltip or content description; None if there is none.

    Ties keep the first element in tree order (FedMABench's smallest-area rule, restricted to describable elements).
    """
    enclosing = [e for e in elements if (e.label or e.content_description) and e.contains(x, y)]
    return min(enclosing, key=lambda e: e.area, default=None)
