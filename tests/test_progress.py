"""The training progress display: one line per epoch off a terminal, a live line whose ETA stays
readable at 80 columns on one, and the grid/checkpoint/notice lines in both."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from latentctl.cli.progress import TrainingProgress, clock
from latentctl.train.events import CheckpointEvent, EpochEvent, NoticeEvent, StepEvent


def steps(epochs=2, per_epoch=5):
    g = 0
    for e in range(1, epochs + 1):
        for s in range(1, per_epoch + 1):
            g += 1
            yield StepEvent(
                e, s, per_epoch, g, epochs * per_epoch * 10, {"d_real": 0.5, "d_fake": 0.25, "g": float(s)}, 120.0
            )


def feed(progress, events, dt=0.5):
    t = [1000.0]
    progress.clock = lambda: t[0]
    for ev in events:
        progress.update(ev)
        t[0] += dt


def test_off_a_terminal_one_summary_line_per_epoch():
    buf = io.StringIO()
    p = TrainingProgress(Console(file=buf, width=80, force_terminal=False))
    assert not p.live
    with p:
        feed(p, steps())
        p.update(EpochEvent(2, Path("run/grids/epoch-0002.png")))
        p.update(CheckpointEvent(Path("run/checkpoint.safetensors"), 2, 10))
        p.update(NoticeEvent("metrics repaired [1 line]"))
    lines = buf.getvalue().splitlines()
    assert "\x1b" not in buf.getvalue() and "\r" not in buf.getvalue()  # no live-bar control codes
    assert len([ln for ln in lines if ln.startswith("epoch ") and "ETA" in ln]) == 2
    first = lines[0]
    assert first.startswith("epoch 1/20  step 5/100")
    assert "g 3 " in first  # the epoch's mean loss (1..5), not the last step's
    assert "120.0 img/s" in first and re.search(r"elapsed 0:02 +ETA \d+:\d\d", first)
    assert lines[-3:] == [
        "epoch 2: grid run/grids/epoch-0002.png",
        "checkpoint saved: run/checkpoint.safetensors",
        "Note: metrics repaired [1 line]",
    ]


def test_live_line_at_80_columns_keeps_the_labelled_eta_and_both_steps():
    p = TrainingProgress(Console(file=io.StringIO(), width=80, force_terminal=True), live=False)
    feed(p, list(steps(per_epoch=40, epochs=1))[:12], dt=1.0)
    lines = p.lines(80)
    assert all(len(ln) <= 80 for ln in lines)
    line = lines[0]
    assert "step 12/40" in line and "global 12/400" in line
    m = re.search(r"ETA (\d+:\d\d)", line)
    assert m and m.group(1) == clock(388 * 11 / 11)  # 11 s for 11 steps after the first: 388 s left
    assert "epoch 1/10" in line
    assert "ETA" in p.lines(60)[0]  # even narrower: the ETA stays on the first line


def test_at_80_columns_the_losses_and_img_per_s_are_shown_whole():
    """The issue's terminal: 80 columns cut "d_real 0.679  d_..." and the img/s off the end."""
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    p = TrainingProgress(console, live=True)
    losses = {"d_real": 0.679, "d_fake": 0.25123, "g": 1.2345}
    t = [0.0]
    p.clock = lambda: t[0]
    with p:
        for g in range(1, 30):
            t[0] += 1.0
            p.update(StepEvent(1, g, 40, g, 4000, losses, 123.4))
    # What the terminal shows last: the final frame of the live display, control codes removed.
    frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue()).split("\r")[-1]
    shown = [ln.rstrip() for ln in frame.splitlines() if ln.strip()]
    assert all(len(ln) <= 80 for ln in shown) and not any(ln.endswith("…") for ln in shown)
    text = " ".join(shown)
    for part in (
        "epoch 1/100",
        "step 29/40",
        "global 29/4000",
        "123.4 img/s",
        "d_real 0.679",
        "d_fake 0.251",
        "g 1.23",
    ):
        assert part in text, (part, shown)
    assert re.search(r"ETA \d+:\d\d:\d\d", text)  # 3971 steps at 1/s: over an hour
    wide = p.lines(200)
    assert len(wide) == 1 and "img/s  d_real 0.679" in wide[0]  # a wide terminal keeps one line


def test_the_first_step_has_no_eta_yet():
    p = TrainingProgress(Console(file=io.StringIO(), width=80), live=False)
    p.clock = lambda: 1000.0
    p.update(next(steps()))
    assert "ETA ?" in p.lines(80)[0]  # one step gives no rate: not "ETA 0:00"


def test_clock():
    assert [clock(83), clock(725), clock(3723), clock(None)] == ["1:23", "12:05", "1:02:03", "?"]


# ---- one long step: `step`, the helper every command's long steps use ---------------------------


def plain_step(label="training the GAN encoder", total=None, **kw):
    """A Step on a console that is not a terminal (a log), its clock ours to move."""
    from latentctl.cli.progress import Step

    buf = io.StringIO()
    s = Step(label, total, console=Console(file=buf, width=80, force_terminal=False), **kw)
    t = [100.0]
    s.clock = lambda: t[0]
    return s, buf, t


def test_off_a_terminal_a_step_says_its_name_every_tenth_and_how_long_it_took():
    s, buf, t = plain_step(total=500)
    with s as advance:
        for done in range(10, 501, 10):  # the GAN encoder reports every 10 steps
            t[0] += 0.4
            advance(done, 500, f"latent MSE {1 / done:.3f}")
    text = buf.getvalue()
    assert "\x1b" not in text and "\r" not in text  # no live-bar control codes in a log
    lines = text.splitlines()
    assert lines[0] == "training the GAN encoder…"
    assert lines[1] == "training the GAN encoder: 10 % (50/500), 0:18 left, latent MSE 0.020"
    assert [ln.split(": ")[1].split(" %")[0] for ln in lines[1:-1]] == [str(p) for p in range(10, 100, 10)]
    assert lines[-1] == "training the GAN encoder: done in 20.0 s"


def test_off_a_terminal_a_slow_step_says_something_every_ten_seconds():
    s, buf, t = plain_step("projecting 1 image(s)", total=1000)
    with s as advance:
        for done in range(1, 41):  # 4 % in 40 s: no tenth reached, a line every 10 s
            t[0] += 1.0
            advance(done)
    lines = buf.getvalue().splitlines()
    assert lines[1:-1] == [
        f"projecting 1 image(s): {p} % ({n}/1,000), {left} left"
        for p, n, left in [(1, 10, "16:30"), (2, 20, "16:20"), (3, 30, "16:10"), (4, 40, "16:00")]
    ]
    assert lines[-1] == "projecting 1 image(s): done in 40.0 s"


def test_a_step_without_a_count_still_says_when_it_starts_and_ends():
    s, buf, t = plain_step("loading the model", finished="ready")
    with s:
        t[0] += 65.0
    assert buf.getvalue().splitlines() == ["loading the model…", "loading the model: ready in 1:05"]


def test_a_lazy_step_with_no_work_says_nothing():
    s, buf, _ = plain_step("decoding the images in faces/", lazy=True)
    with s:
        pass  # the images were in the cache: no progress was ever reported
    assert buf.getvalue() == ""
    s, buf, t = plain_step("decoding the images in faces/", lazy=True)
    with s as advance:
        t[0] += 2.0
        advance(64, 64)
    assert buf.getvalue().splitlines() == [
        "decoding the images in faces/…",
        "decoding the images in faces/: done in 2.0 s",
    ]


def test_a_failed_step_does_not_claim_to_be_done():
    s, buf, _ = plain_step(total=10)
    try:
        with s as advance:
            advance(3)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert "done" not in buf.getvalue()


def test_then_ends_one_part_and_starts_the_next():
    s, buf, t = plain_step("learning the zoom walk", total=4)
    with s as advance:
        for done in range(1, 5):
            t[0] += 1.0
            advance(done, 4, "loss 0.1")
        advance.then("measuring the walk on held-out latents", 7)
        t[0] += 7.0
        advance(7, 7)
    lines = buf.getvalue().splitlines()
    assert lines[-3:] == [
        "learning the zoom walk: done in 4.0 s",
        "measuring the walk on held-out latents…",
        "measuring the walk on held-out latents: done in 7.0 s",
    ]


def test_on_a_terminal_a_step_is_one_bar_with_its_count_and_time_left_within_80_columns():
    from latentctl.cli.progress import Step

    buf = io.StringIO()
    s = Step(
        "training the GAN encoder (500 steps of 64 samples)",
        500,
        console=Console(file=buf, width=80, force_terminal=True, color_system=None),
    )
    t = [0.0]
    s.clock = lambda: t[0]
    with s as advance:
        for done in range(10, 210, 10):
            t[0] += 0.5
            advance(done, 500, "latent MSE 0.123")
        line = s.live_line(78)
    assert len(line) <= 78 and line.startswith("training the GAN encoder")
    assert "200/500  0:15 left" in line  # the count and time left stay; the extra goes first
    assert s.live_line(200).endswith("200/500  0:15 left  latent MSE 0.123")
    # the bar is transient: what stays on the screen is the one line saying how long it took
    assert (
        buf.getvalue()
        .rstrip()
        .splitlines()[-1]
        .endswith("training the GAN encoder (500 steps of 64 samples): done in 10.0 s")
    )


def test_a_quiet_step_says_nothing():
    s, buf, _ = plain_step(total=10, quiet=True)
    with s as advance:
        advance(5)
    assert buf.getvalue() == ""
