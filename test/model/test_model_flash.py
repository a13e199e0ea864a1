"""AHA-WAM-Flash: a distilled 1-step student beats the teacher's own 1-step sample."""

from ahawam_ros.model.aha_wam import AhaWamModel
from ahawam_ros.model.flash import chunk_conditions, flash_distill_step, make_student
from ahawam_ros.model.presets import get_preset
from ahawam_ros.model.testing import perturb_zero_inits, synthetic_batch
import torch


def distances_to_teacher(teacher: AhaWamModel, student: AhaWamModel, batch) -> tuple:
    """MSE to the 16-step teacher of (teacher 1-step, student 1-step) on fixed noise."""
    with torch.no_grad():
        keys, values, tasks, proprio = chunk_conditions(teacher, batch)
        noise = torch.randn(keys.shape[1], teacher.config.executor.chunk_len,
                            teacher.config.executor.action_dim,
                            generator=torch.Generator().manual_seed(9))
        teacher_cache = teacher.prepare_executor(keys, values, tasks, proprio)
        reference = teacher.sample_actions(teacher_cache, 16, noise=noise)
        one_step = teacher.sample_actions(teacher_cache, 1, noise=noise)
        student_cache = student.prepare_executor(keys, values, tasks, proprio)
        distilled = student.sample_actions(student_cache, 1, noise=noise)
    return (float((one_step - reference).pow(2).mean()),
            float((distilled - reference).pow(2).mean()))


def test_one_step_student_is_closer_to_the_16_step_teacher_than_its_one_step():
    torch.manual_seed(3)
    teacher = AhaWamModel(get_preset('tiny')).eval()
    perturb_zero_inits(teacher, std=0.5, seed=3)  # a teacher with a curved flow field
    teacher.requires_grad_(False)
    student = make_student(teacher, num_steps=1)
    assert student.config.flow.num_inference_steps == 1
    assert not any(p.requires_grad for p in student.planner.parameters())
    train, held_out = (synthetic_batch(teacher.config, 4, seed=s) for s in (4, 5))
    before = distances_to_teacher(teacher, student, held_out)
    assert before[0] == before[1]  # the student starts as the teacher
    optimizer = torch.optim.Adam(student.executor.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(80):
        flash_distill_step(student, teacher, optimizer, train, generator=generator)
    teacher_one_step, student_one_step = distances_to_teacher(teacher, student, held_out)
    assert student_one_step < 0.5 * teacher_one_step, (teacher_one_step, student_one_step)
