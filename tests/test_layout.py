import numpy as np
import pytest

from conftest import shared_data
from pipeline.pose import layout
from pipeline.pose.openpose import read_frame


def test_layout_shape_and_graph():
    assert layout.NUM_JOINTS == 61 and len(layout.JOINTS) == 61
    a = layout.adjacency(self_loops=False)
    assert (a == a.T).all() and a.trace() == 0
    # one connected skeleton: 60 edges for 61 joints makes it a tree
    assert len(layout.EDGES) == 60
    reach = np.eye(61, dtype=bool)
    for _ in range(61):
        reach = reach | ((reach.astype(int) @ a) > 0)
    assert reach.all()
    assert a[layout.INDEX["LWrist"], layout.LEFT_HAND.start] == 1
    assert a[layout.INDEX["RWrist"], layout.RIGHT_HAND.start] == 1


def test_from_openpose_body25_keeps_joints_and_hands():
    rng = np.random.default_rng(0)
    person = np.concatenate([rng.uniform(1, 500, (67, 2)), rng.uniform(0.1, 1, (67, 1))], 1).astype(np.float32)
    person[3, 2] = 0.0  # RElbow missing
    kp = layout.from_openpose(person)
    assert kp.shape == (61, 3)
    assert np.array_equal(kp[: len(layout.BODY)][[0, 1, 2, 4]], person[[0, 1, 2, 4]])
    assert (kp[layout.INDEX["RElbow"]] == 0).all()  # missing rule: all zero
    assert np.array_equal(kp[layout.LEFT_HAND], person[25:46])
    assert np.array_equal(kp[layout.RIGHT_HAND], person[46:67])


def test_from_openpose_coco18_derives_midhip():
    body = np.zeros((67, 3), np.float32)
    coco_rhip, coco_lhip = 8, 11
    body[coco_rhip] = (100, 200, 0.9)
    body[coco_lhip] = (140, 204, 0.6)
    body[1] = (120, 100, 0.8)
    kp = layout.from_openpose(body, "COCO_18")
    assert kp[layout.INDEX["MidHip"]] == pytest.approx([120, 202, 0.6])
    assert kp[layout.INDEX["RHip"]] == pytest.approx([100, 200, 0.9])
    assert kp[layout.INDEX["LHip"]] == pytest.approx([140, 204, 0.6])
    body[coco_lhip, 2] = 0
    assert (layout.from_openpose(body, "COCO_18")[layout.INDEX["MidHip"]] == 0).all()
    with pytest.raises(ValueError, match="unknown OpenPose body format"):
        layout.from_openpose(body, "MPI_15")


def test_from_coco_wholebody_and_mediapipe_agree_on_sides():
    whole = np.zeros((133, 3), np.float32)
    whole[5] = (300, 100, 1)  # left shoulder (image right: the person faces us)
    whole[6] = (200, 100, 1)  # right shoulder
    whole[91] = (320, 250, 1)  # left-hand wrist
    a = layout.from_coco_wholebody(whole)
    assert a[layout.INDEX["LShoulder"], 0] == 300 and a[layout.INDEX["RShoulder"], 0] == 200
    assert a[layout.INDEX["Neck"]] == pytest.approx([250, 100, 1])
    assert a[layout.LEFT_HAND.start] == pytest.approx([320, 250, 1])
    pose = np.zeros((33, 3), np.float32)
    pose[11], pose[12] = (300, 100, 1), (200, 100, 1)
    left = np.tile(np.array([320, 250, 1], np.float32), (21, 1))
    b = layout.from_mediapipe(pose, left, None)
    assert np.allclose(a[: len(layout.BODY)], b[: len(layout.BODY)])
    assert np.allclose(a[layout.LEFT_HAND][0], b[layout.LEFT_HAND][0]) and (b[layout.RIGHT_HAND] == 0).all()
    body_only = layout.from_coco_wholebody(whole[:17])  # a COCO body model (e.g. RTMPose-t): no hands
    assert np.array_equal(body_only[: len(layout.BODY)], a[: len(layout.BODY)])
    assert (body_only[len(layout.BODY) :] == 0).all()
    with pytest.raises(ValueError, match="got 25"):
        layout.from_coco_wholebody(whole[:25])


def test_real_openpose_people_map_into_the_layout():
    folder = shared_data("raga_performance", "example_3people", "output_json")
    frame = read_frame(sorted(folder.glob("*_keypoints.json"))[0])
    for person in frame.people:
        kp = layout.from_openpose(person)
        box = layout.bounding_box(kp)
        assert box is not None and box[2] > box[0] and box[3] > box[1]
        assert (kp[kp[:, 2] == 0] == 0).all()
    assert layout.bounding_box(layout.empty()[0]) is None


def test_hops_and_parents_lead_every_joint_to_the_neck():
    neck = layout.INDEX["Neck"]
    hop = layout.hops_from(neck)
    parent = layout.parents()
    assert hop[neck] == 0 and parent[neck] == neck
    assert hop[layout.INDEX["LWrist"]] == 3  # neck, shoulder, elbow, wrist
    edges = {frozenset(e) for e in layout.EDGES}
    for j in range(layout.NUM_JOINTS):
        if j != neck:
            assert frozenset((j, parent[j])) in edges and hop[parent[j]] == hop[j] - 1
    tip = layout.LEFT_HAND.start + 20  # the little finger's tip: 4 finger joints, hand wrist, arm
    steps, j = 0, tip
    while j != neck:
        j, steps = parent[j], steps + 1
    assert steps == hop[tip] == 3 + 1 + 4
