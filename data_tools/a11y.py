"""The UI elements of an Android-Control screen and the element a click lands on, exactly as FedMABench finds them.

FedMABench (github wwh0411/FedMABench at 417d8b0) writes each accessibility forest (android_env
``AndroidAccessibilityForest``) as an XML file of selected nodes (``data_process/1_dump_ac.py`` with
``utils/node_process.py``: ``extract_nodes``, ``dump_nodes_to_xml``) and names a click by the smallest node of that file
that contains the point (``2_gen_jsonl_from_unpack_ac.py``: ``find_index_for_coordinates``). Its published data and
results use these rules, so ``screen_elements`` reproduces them one by one (listed in its docstring), including the
order of the elements, which breaks ties between equal areas.
"""

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Dict, List, Optional, Sequence, Tuple
from xml.parsers import expat

import numpy as np
from android_env.proto.a11y.android_accessibility_forest_pb2 import AndroidAccessibilityForest

INPUT_METHOD_WINDOW = 2  # AndroidAccessibilityWindowInfo.TYPE_INPUT_METHOD
IME_ACTION_KEY_SUFFIX = 'key_pos_ime_action'  # the keyboard's enter/search/done key
MAX_OFF_SCREEN_PERCENT = 10
# Characters XML 1.0 forbids; FedMABench's XML dump of a screen fails when a kept node's attribute holds one.
_NOT_XML = re.compile('[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')

Box = Tuple[int, int, int, int]


@dataclass(frozen=True)
class Element:
    """One UI element: ``bounds`` is [left, top, right, bottom] in screen pixels (edges included)."""

    bounds: List[int]
    text: str
    content_description: str
    tooltip: str
    hint_text: str
    resource_id: str
    class_name: str
    clickable: bool

    @property
    def area(self) -> int:
        left, top, right, bottom = self.bounds
        return (right - left) * (bottom - top)

    def contains(self, x: float, y: float) -> bool:
        left, top, right, bottom = self.bounds
        return left <= x <= right and top <= y <= bottom

    def to_dict(self) -> Dict[str, object]:
        return {**vars(self), 'bounds': list(self.bounds)}


@dataclass(slots=True)
class _Node:
    """A selected node; the merge of a single child changes its attributes and child ids."""

    uid: int
    children: List[int]
    bounds: Box
    class_name: str
    text: str
    content_description: str
    tooltip: str
    hint_text: str
    resource_id: str
    package_name: str
    clickable: bool

    #: attributes a parent takes from its merged single child where its own are empty (FedMABench's compare_nodes
    #: list, restricted to what an Element or the XML dump reads)
    MERGED = ('text', 'content_description', 'tooltip', 'hint_text', 'resource_id', 'package_name', 'clickable')

    def absorb(self, child: '_Node') -> None:
        for name in self.MERGED:
            setattr(self, name, getattr(self, name) or getattr(child, name))

    def element(self) -> Element:
        return Element(
            bounds=list(self.bounds),
            text=self.text,
            content_description=self.content_description,
            tooltip=self.tooltip,
            hint_text=self.hint_text,
            resource_id=self.resource_id,
            class_name=self.class_name,
            clickable=self.clickable,
        )


def _box(rect) -> Box:
    return rect.left, rect.top, rect.right, rect.bottom


def _window_nodes(window, first_uid: int, covers: Sequence[Box], width: int, height: int) -> List[_Node]:
    """Nodes of ``window`` with text, a content description, hint text or a click and at least one pixel that no box
    of ``covers`` hides, renumbered from ``first_uid`` by position (node ids repeat across windows), child ids
    renumbered alike. (Both tests run before a node is built: most nodes of a scrolled list are off screen.)"""
    nodes = window.tree.nodes
    uid = {node.unique_id: first_uid + position for position, node in enumerate(nodes)}
    selected = []
    for node in nodes:
        text, description, hint, clickable = node.text, node.content_description, node.hint_text, node.is_clickable
        if not (text or description or hint or clickable):
            continue
        rect = node.bounds_in_screen
        bounds = (rect.left, rect.top, rect.right, rect.bottom)
        if not _visible(bounds, covers, width, height):
            continue
        selected.append(
            _Node(
                uid[node.unique_id], [uid[c] for c in node.child_ids if c in uid], bounds, node.class_name, text,
                description, node.tooltip_text, hint, node.view_id_resource_name, node.package_name, clickable,
            )
        )  # fmt: skip
    return selected


def _slice_end(index: int, length: int) -> int:
    """Where ``index`` falls as a slice end of a sequence of ``length`` (Python's rule for step 1: a negative index
    counts from the far end, then the result is clipped to [0, length])."""
    if index < 0:
        index += length
        return index if index > 0 else 0
    return index if index < length else length


def _pixel_rect(box: Box, width: int, height: int) -> Box:
    """The pixels ``mask[top:bottom, left:right]`` selects in a height x width numpy mask (Python slice rules:
    negative ends count from the far edge, ends are clipped), as [left, top, right, bottom) with right >= left."""
    left, top, right, bottom = box
    if 0 <= left <= right <= width and 0 <= top <= bottom <= height:
        return box  # on screen: the slices select exactly the box
    left, right = _slice_end(left, width), _slice_end(right, width)
    top, bottom = _slice_end(top, height), _slice_end(bottom, height)
    return left, top, max(left, right), max(top, bottom)


def _covered(rect: Box, covers: Sequence[Box]) -> bool:
    """True if every pixel of the non-empty pixel rectangle ``rect`` lies in one of ``covers``."""
    left, top, right, bottom = rect
    overlapping = [c for c in covers if c[0] < right and c[2] > left and c[1] < bottom and c[3] > top]
    if not overlapping:
        return False
    if any(c[0] <= left and c[1] <= top and c[2] >= right and c[3] >= bottom for c in overlapping):
        return True
    xs = sorted({left, right, *(x for c in overlapping for x in (c[0], c[2]) if left < x < right)})
    ys = sorted({top, bottom, *(y for c in overlapping for y in (c[1], c[3]) if top < y < bottom)})
    return all(
        any(c[0] <= x0 and c[2] >= x1 and c[1] <= y0 and c[3] >= y1 for c in overlapping)
        for x0, x1 in zip(xs, xs[1:])
        for y0, y1 in zip(ys, ys[1:])
    )


def _visible(bounds: Box, covers: Sequence[Box], width: int, height: int) -> bool:
    rect = _pixel_rect(bounds, width, height)
    return rect[2] > rect[0] and rect[3] > rect[1] and not _covered(rect, covers)


def _mostly_on_screen(node: _Node, width: int, height: int) -> bool:
    """Inside the screen, or off it by more than 0% and less than 10% of the node's area. The off-screen area adds
    the overhang past each edge (corners count twice), as FedMABench's filter_node_by_bounds computes it."""
    left, top, right, bottom = node.bounds
    if 0 <= left < right <= width and 0 <= top < bottom <= height:
        return True
    area = (right - left) * (bottom - top)
    outside = 0
    if left < 0:
        outside += -left * (bottom - top)
    if top < 0:
        outside += -top * (right - left)
    if right > width:
        outside += (right - width) * (bottom - top)
    if bottom > height:
        outside += (bottom - height) * (right - left)
    percent = (outside / area) * 100 if area > 0 else 0
    return 0 < percent < MAX_OFF_SCREEN_PERCENT


def _center_inside(parent: _Node, child: _Node) -> bool:
    left, top, right, bottom = parent.bounds
    x, y = (left + right) // 2, (top + bottom) // 2
    return child.bounds[0] <= x <= child.bounds[2] and child.bounds[1] <= y <= child.bounds[3]


def _merge_single_children(nodes: List[_Node]) -> List[_Node]:
    """FedMABench's filter_node_by_hierarchy: until nothing changes, a node with exactly one remaining child whose
    box holds the node's center absorbs that child (``_Node.absorb``) and takes over its child ids. Every node of
    the input is visited on each pass, removed ones included, as FedMABench does."""
    by_uid = {node.uid: node for node in nodes}
    kept = [node.uid for node in nodes]
    kept_count = Counter(kept)
    size = None
    while len(kept) != size:
        size = len(kept)
        for node in nodes:
            children = [uid for uid in node.children if kept_count[uid]]
            if len(children) != 1:
                continue
            parent, child = by_uid[node.uid], by_uid[children[0]]
            if _center_inside(parent, child):
                parent.absorb(child)
                kept.remove(child.uid)
                kept_count[child.uid] -= 1
                node.children = list(child.children)
    return [by_uid[uid] for uid in kept]


def _selected_nodes(forest: AndroidAccessibilityForest, width: int, height: int) -> List[_Node]:
    """FedMABench's extract_nodes: windows from the top layer down (reversed numpy argsort of ``layer``); in each,
    the nodes with text, description, hint or a click with at least one pixel no higher window covers; of those, the
    input-method window's action key, and the nodes of active windows that are mostly on screen
    (``_mostly_on_screen``) with single children merged (``_merge_single_children``)."""
    windows = forest.windows
    selected: List[_Node] = []
    covers: List[Box] = []
    first_uid = 0
    for position in np.argsort([window.layer for window in windows])[::-1]:
        window = windows[int(position)]
        keyboard = window.window_type == INPUT_METHOD_WINDOW
        if keyboard or window.is_active:  # an inactive window's nodes are never selected: not read at all
            nodes = _window_nodes(window, first_uid, covers, width, height)
            if keyboard:
                selected += [node for node in nodes if node.resource_id.endswith(IME_ACTION_KEY_SUFFIX)]
            else:
                selected += _merge_single_children([node for node in nodes if _mostly_on_screen(node, width, height)])
        first_uid += len(window.tree.nodes)
        cover = _pixel_rect(_box(window.bounds_in_screen), width, height)
        if cover[2] > cover[0] and cover[3] > cover[1]:
            covers.append(cover)
    return selected


@cache
def _xml_tag_ok(class_name: str) -> bool:
    """Whether FedMABench's tag for ``class_name`` (its last dotted part, '$' read as '.', non-word characters
    dropped, 'Node' if empty) is a valid XML element name."""
    tag = re.sub(r'[^\w]', '', class_name.replace('$', '.').split('.')[-1]) or 'Node'
    try:
        expat.ParserCreate().Parse(f'<{tag}/>', True)
    except expat.ExpatError:
        return False
    return True


def _xml_dump_fails(nodes: Sequence[_Node]) -> bool:
    """Whether FedMABench's dump of these nodes raises (it then writes no XML and every click on the screen reads
    "on point"): an attribute holds a character XML forbids, or a class name gives no valid XML tag."""
    return any(
        not _xml_tag_ok(node.class_name)
        or _NOT_XML.search(
            ''.join(
                (node.text, node.content_description, node.tooltip, node.hint_text, node.resource_id, node.package_name)
            )
        )
        for node in nodes
    )


def _xml_order(nodes: List[_Node]) -> Optional[List[_Node]]:
    """The nodes in the order of FedMABench's XML file: roots in the order Python iterates the set difference
    ``set(ids) - set(child ids)``, each followed by its children depth-first. None where FedMABench's node count
    check fails (a node reached twice or never, e.g. through a cycle)."""
    by_uid = {node.uid: node for node in nodes}
    uids = [node.uid for node in nodes]
    child_uids = [uid for node in nodes for uid in node.children if uid in by_uid]
    stack = list(reversed(list(set(uids) - set(child_uids))))
    order: List[_Node] = []
    while stack and len(order) <= len(nodes):
        node = by_uid[stack.pop()]
        order.append(node)
        stack += reversed([uid for uid in node.children if uid in by_uid])
    if len(order) != len(nodes):
        return None
    unique: Dict[int, _Node] = {}
    for node in order:  # a uid listed twice appears once, at its first place
        unique.setdefault(node.uid, node)
    return list(unique.values())


def screen_elements(serialized_forest: bytes, width: int, height: int) -> List[Element]:
    """The elements FedMABench keeps for one screen of ``width`` x ``height`` pixels, in its XML order.

    Rules (FedMABench's, see the module docstring):

    1. Windows are visited from the top layer down; each hides, for the windows below it, the pixels of its bounds.
    2. A node is a candidate if it has text, a content description, hint text or is clickable, and not all of its
       pixels are hidden by higher windows (a node without pixels on screen is never one).
    3. The input-method window keeps only its action key (resource name ending in ``key_pos_ime_action``); other
       windows keep their candidates only when active (so the navigation bar's Back button is not an element).
    4. In an active window, a node that is not inside the screen is dropped unless more than 0% and less than 10% of
       its area lies outside it.
    5. A node with a single remaining child whose box holds the node's center absorbs it: the node keeps its own
       box and takes the child's text, description, tooltip, hint, resource id and clickability where its own are
       empty; the child is dropped.
    6. Where FedMABench's XML dump fails (``_xml_dump_fails``, ``_xml_order``) the screen has no elements.

    Raises ``google.protobuf.message.DecodeError`` when ``serialized_forest`` is not a forest.
    """
    forest = AndroidAccessibilityForest()
    forest.ParseFromString(serialized_forest)
    nodes = _selected_nodes(forest, width, height)
    ordered = None if _xml_dump_fails(nodes) else _xml_order(nodes)
    return [node.element() for node in ordered or ()]


def element_at(x: float, y: float, elements: Sequence[Element]) -> Optional[Element]:
    """The element a click at (x, y) lands on: the smallest by area whose box (edges included) contains the point,
    with or without a label; the first in order among equal areas; None if no element contains it."""
    return min((e for e in elements if e.contains(x, y)), key=lambda e: e.area, default=None)
