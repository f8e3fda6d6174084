"""engine.editing.assist: AI proposals never overwrite a person's voxels; fill between the user's
key slices; fills that leak are described in mL and slices."""

from __future__ import annotations

import numpy as np
import pytest

from engine.editing import LabelEditor, ops
from engine.editing.assist import (describe_extent, difference_mask, key_slices, leak_question, merge_proposal,
                                   plan_fill_between, proposal_changes)
from engine.types import Geometry


def _ai_then_hand_edit():
    ai = np.zeros((6, 20, 20), np.uint8)
    ai[2:4, 5:10, 5:10] = 1
    ed = LabelEditor(np.zeros_like(ai), Geometry(ai.shape, spacing=(2.0, 1.0, 1.0)))
    ed.apply_ai_result(ai)
    # the person erases part of the AI's GGO and paints consolidation elsewhere
    ed.paint(ops.Region((slice(2, 3), slice(5, 7), slice(5, 10)), np.ones((1, 2, 5), bool)), 0, name="Erase")
    ed.paint(ops.Region((slice(4, 5), slice(12, 15), slice(12, 15)), np.ones((1, 3, 3), bool)), 2, name="Brush")
    return ed


def test_merge_keeps_every_voxel_a_person_painted_or_erased():
    ed = _ai_then_hand_edit()
    person = ed.person_mask()
    assert person.sum() == 10 + 9
    proposal = np.zeros_like(ed.labels)
    proposal[1:5, 4:12, 4:12] = 1  # a bigger GGO that also covers the erased voxels
    merged = merge_proposal(ed.labels, proposal, person)
    assert (merged[person] == ed.labels[person]).all()  # erased stays erased, painted stays painted
    assert merged[2, 5, 5] == 0 and merged[4, 13, 13] == 2
    assert merged[1, 4, 4] == 1 and merged[3, 11, 11] == 1  # the AI fills where nobody edited
    changes = proposal_changes(ed.labels, merged, proposal, person)
    assert changes.kept_by_person == int((person & (proposal != ed.labels)).sum()) == 10 + 9
    assert changes.added[1] == int(((merged == 1) & (ed.labels != 1)).sum())


def test_per_finding_accept_leaves_other_findings_alone():
    current = np.zeros((1, 4, 6), np.uint8)
    current[0, 0, :3] = 1   # GGO the AI found before
    current[0, 1, :3] = 3   # effusion
    proposal = np.zeros_like(current)
    proposal[0, 0, 3:] = 1  # GGO moved right
    proposal[0, 2, :] = 2   # new consolidation
    person = np.zeros(current.shape, bool)
    merged = merge_proposal(current, proposal, person, values=[1])
    assert merged[0, 0].tolist() == [0, 0, 0, 1, 1, 1]  # GGO follows the proposal
    assert merged[0, 1].tolist() == [3, 3, 3, 0, 0, 0]  # effusion untouched
    assert merged[0, 2].tolist() == [0] * 6  # consolidation not accepted


def test_difference_mask_codes():
    cur = np.array([[[0, 1, 1, 2]]], np.uint8)
    new = np.array([[[1, 1, 0, 3]]], np.uint8)
    assert difference_mask(cur, new).tolist() == [[[1, 0, 2, 3]]]


def test_fill_between_uses_the_slices_a_person_painted_not_ai_specks():
    labels = np.zeros((12, 16, 16), np.uint8)
    labels[5, 2, 2] = 1  # an AI speck in the middle of the user's gap
    person = np.zeros(labels.shape, bool)
    for z in (2, 9):
        labels[z, 6:10, 6:10] = 1
        person[z, 6:10, 6:10] = True
    assert key_slices(labels, person, 1) == [2, 9]
    plan = plan_fill_between(labels, person, 1, cursor=5, spacing=(2.0, 1.0, 1.0), name="GGO")
    assert plan.ok and (plan.start, plan.stop) == (2, 9)
    full = plan.region.to_full(labels.shape)
    assert full[3:9, 6:10, 6:10].all()  # every slice of the gap is filled with the square
    assert not full[:, 2, 2].any()  # the speck did not shape the interpolation
    assert full[3:9].sum() == 6 * 16


def test_fill_between_explains_when_there_is_nothing_to_do():
    labels = np.zeros((8, 8, 8), np.uint8)
    person = np.zeros(labels.shape, bool)
    labels[3, 2:4, 2:4] = 1
    person[3, 2:4, 2:4] = True
    plan = plan_fill_between(labels, person, 1, cursor=3, name="GGO")
    assert not plan.ok and "painted by hand on one slice" in plan.reason
    labels[4, 2:4, 2:4] = 1
    person[4, 2:4, 2:4] = True
    assert "adjacent" in plan_fill_between(labels, person, 1, cursor=3, name="GGO").reason
    labels[7, 2:4, 2:4] = 1
    person[7, 2:4, 2:4] = True
    far = plan_fill_between(labels, person, 1, cursor=1, name="GGO")
    assert not far.ok and "slices 4, 5, 8" in far.reason
    near = plan_fill_between(labels, person, 1, cursor=5, name="GGO")
    assert (near.start, near.stop) == (4, 7)


def test_a_fill_that_reaches_the_edge_asks_in_millilitres():
    shape = (3, 50, 50)
    aerated = np.zeros(shape, bool)
    aerated[1] = True
    aerated[1, 10:20, 10:20] = False  # the user's closed outline
    leak = ops.Region((slice(0, 3), slice(0, 50), slice(0, 50)), aerated)
    question = leak_question(leak, shape, (1.0, 0.8, 0.8), plane_axis=0)
    assert question is not None
    assert "1.5 mL over 1 slice" in question and "edge of the image" in question and "96 %" in question
    inside = ops.Region((slice(1, 2), slice(11, 19), slice(11, 19)), np.ones((1, 8, 8), bool))
    assert leak_question(inside, shape, (1.0, 0.8, 0.8), plane_axis=0) is None
    assert describe_extent(inside, None).describe() == "64 voxels over 1 slice"


def test_merge_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        merge_proposal(np.zeros((1, 2, 2), np.uint8), np.zeros((1, 2, 3), np.uint8), np.zeros((1, 2, 2), bool))


def test_provenance_from_a_file_survives_reopen(tmp_path):
    """Export with the person mask, reopen, adopt it: the editor knows the same voxels were hand-edited."""
    from engine import io
    from engine.io.seg_nrrd import read_seg_nrrd_edited

    ed = _ai_then_hand_edit()
    person = ed.person_mask()
    path = tmp_path / "labels.seg.nrrd"
    from engine.io.seg_nrrd import write_seg_nrrd
    from engine.labels import DEFAULT_TABLE
    write_seg_nrrd(ed.labels, ed.geometry, path, DEFAULT_TABLE, edited=person)
    labels = io.load_labels(path)
    reopened = LabelEditor(labels.copy(), Geometry(labels.shape, spacing=(2.0, 1.0, 1.0)))
    assert not reopened.person_changes()  # without provenance a reopened file looks untouched
    reopened.adopt_person_edits(read_seg_nrrd_edited(path))
    assert np.array_equal(reopened.person_mask(), person)
    changes = reopened.person_changes()
    assert changes[2] == (9, 0)  # the consolidation the person painted
    assert changes[LabelEditor.UNKNOWN_PRIOR] == (0, 10)  # the erased voxels, prior finding unknown
    assert reopened.person_changes_ml()["consolidation"]["added_ml"] == pytest.approx(9 * 2.0 / 1000)


def test_ai_result_with_keep_person_leaves_provenance_with_the_person_and_undo_restores_it():
    first = np.zeros((4, 6, 6), np.uint8)
    first[1, 1:4, 1:4] = 1
    ed = LabelEditor(np.zeros_like(first))
    ed.apply_ai_result(first)
    ed.paint(ops.Region((slice(2, 3), slice(0, 2), slice(0, 2)), np.ones((1, 2, 2), bool)), 2, name="Brush")
    ed.paint(ops.Region((slice(1, 2), slice(1, 2), slice(1, 2)), np.ones((1, 1, 1), bool)), 0, name="Eraser")
    person = ed.person_mask()
    assert person.sum() == 5
    second = np.ones_like(first)  # a second proposal covering everything
    merged = merge_proposal(ed.labels, second, person)
    ed.apply_ai_result(merged, keep_person=person)
    np.testing.assert_array_equal(ed.person_mask(), person)  # still the person's voxels
    assert ed.labels[2, 0, 0] == 2 and ed.labels[1, 1, 1] == 0 and ed.labels[3, 5, 5] == 1
    assert ed.person_changes() == {1: (0, 1), 2: (4, 0)}
    ed.undo()
    np.testing.assert_array_equal(ed.person_mask(), person)
    # without keep_person the model would get the credit (the old behaviour)
    ed.apply_ai_result(merged)
    assert not ed.person_mask().any()


def test_fill_between_change_and_its_preview():
    """The fill-between plan the app previews (moved from app/ to the engine): only voxels that change, the
    paint-over mode respected, and a preview of 1 (added) and 3 (another finding changed)."""
    from engine.editing.assist import fill_between_change, fill_preview

    labels = np.zeros((10, 20, 20), np.uint8)
    labels[2, 5:10, 5:10] = 3
    labels[8, 5:10, 5:10] = 3
    labels[5, 7, 7] = 2  # another finding inside the gap
    person = labels == 3
    plan, region = fill_between_change(labels, person, 3, 5, (1.0, 1.0, 1.0), "effusion", "everything", None)
    assert (plan.start, plan.stop) == (2, 8) and region.count == 5 * 25
    preview = fill_preview(labels, region)
    assert preview[5, 7, 7] == 3 and preview[5, 6, 6] == 1 and not preview[2].any()
    _, kept = fill_between_change(labels, person, 3, 5, (1.0, 1.0, 1.0), "effusion", "background", None)
    assert kept.count == 5 * 25 - 1  # the other finding's voxel is kept
    _, hidden = fill_between_change(labels, person, 3, 5, (1.0, 1.0, 1.0), "effusion", "everything", None,
                                    protect=[2])
    assert hidden.count == 5 * 25 - 1  # a hidden label is never changed, whatever the paint-over mode
    said = fill_between_change(labels, person, 3, 5, (1.0, 1.0, 1.0), "effusion", "label", 2, protect=[2])
    assert isinstance(said, str) and "only hidden labels would change" in said
    labels[3:8, 5:10, 5:10] = 3
    said = fill_between_change(labels, labels == 3, 3, 5, (1.0, 1.0, 1.0), "effusion", "background", None)
    assert isinstance(said, str) and said.startswith("Nothing to fill")


def test_fill_between_slices_of_the_orientation_they_were_painted_in():
    """QA pass: consolidation painted on coronal slices 3 and 9 could not be filled ("adjacent": along the
    axial axis the strokes touch); the coronal gap is filled, and said to be coronal."""
    from engine.editing.assist import fill_between_change

    labels = np.zeros((12, 14, 16), np.uint8)
    labels[4:8, 3, 5:11] = 2  # a stroke on coronal slice 3
    labels[4:8, 9, 5:11] = 2  # and one on coronal slice 9
    person = labels == 2
    cursor = (6, 6, 8)  # between them on the coronal axis
    axial_only = fill_between_change(labels, person, 2, cursor, (1.0, 1.0, 1.0), "consolidation", "background", None)
    assert isinstance(axial_only, str) and "adjacent" in axial_only
    plan, region = fill_between_change(labels, person, 2, cursor, (1.0, 1.0, 1.0), "consolidation", "background",
                                       None, axes=(0, 1, 2))
    assert plan.axis == 1 and (plan.start, plan.stop) == (3, 9)
    filled = np.zeros(labels.shape, bool)
    filled[region.box] = region.mask
    assert filled[4:8, 4:9, 5:11].all() and filled.sum() == 4 * 5 * 6  # the coronal gap, nothing else
    # the view in focus first: axial painting still fills axially when the coronal view has focus
    labels[:] = 0
    labels[2, 4:9, 4:9] = 2
    labels[8, 4:9, 4:9] = 2
    plan, _ = fill_between_change(labels, labels == 2, 2, (5, 6, 6), (1.0, 1.0, 1.0), "consolidation",
                                  "background", None, axes=(1, 0, 2))
    assert plan.axis == 0 and (plan.start, plan.stop) == (2, 8)
