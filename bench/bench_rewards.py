"""Benchmark: swift-ext rewards against the same-purpose anchors on identical completions.

    python bench/bench_rewards.py                 # 512 completions, best of 5, pinned to one core
    python bench/bench_rewards.py --n 512 --repeat 5 --markdown .notes/bench-rewards.md

Anchors (scored on exactly the same completions and columns):

- ms-swift 4.6 built-ins from ``swift.rewards.orm``: ``format``, ``accuracy`` (math-verify), ``repetition``,
  ``soft_overlong``, instantiated with a namespace holding the fields they read;
- TRL ``trl.rewards.get_soft_overlong_punishment`` (installed with ms-swift);
- open-r1 ``tag_count_reward`` and ``reasoning_steps_reward`` and VLM-R1 ``Qwen2VLModule.iou_reward``,
  re-implemented below from their published code (neither is pip-installable);
- ``rouge`` (pltrdy, an ms-swift dependency) for ROUGE-L and ``nltk``'s ``sentence_chrf`` for chrF;
- ``tool_call`` against ToolRL's ``rlla.py`` and ``ifeval`` against lm-eval's IFEval checkers
  (``bench/anchors_verifiable.py``).
- the references of the document and detection rewards (from the ``test`` extra): lmms-eval's ``anls`` and
  ChartQA's ``relaxed_correctness`` (vendored in ``tests/lmms_eval_reference.py``), jiwer's ``cer`` / ``wer``, and
  pycocotools' ``COCOeval`` called per completion as VLM-R1's ``map_reward`` does (and once over all images).

For each pair it prints completions/s, the ratio, the time of one batch, and how many scores agree on
the completions where the two definitions mean the same thing (the filter is named in the table).
A second table gives the batch time of every registered reward, and the slowest single math
completion. Markdown goes to stdout (and ``--markdown``); progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))  # lmms_eval_reference

from swift_ext import plugins  # noqa: E402
from swift_ext.cli._common import console, progress  # noqa: E402
from swift_ext.rewards import configure  # noqa: E402
from swift_ext.rewards.boxes import smart_resize  # noqa: E402

WORDS = ("the a cat dog sat on mat we add carry result so then value number total because each step next check "
         "image left right box red blue count apples answer is of in to it this that two three four five").split()
CJK = ["我们", "先算", "然后", "结果", "图中", "有", "猫", "狗", "答案", "因此"]


# -- data -------------------------------------------------------------------------------------------------
def sentence(rng: random.Random, n: int, cjk: float = 0.0) -> str:
    out = []
    for _ in range(n):
        out.append(rng.choice(CJK) if rng.random() < cjk else rng.choice(WORDS))
    return " ".join(out)


def reasoning(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return "\n".join(f"Step {i + 1}: {sentence(rng, rng.randint(6, 14))}" for i in range(rng.randint(1, 5)))
    if kind < 0.45:
        return "First, " + sentence(rng, 10) + ". Next, " + sentence(rng, 10) + ". Finally, " + sentence(rng, 6)
    if kind < 0.6:
        phrase = sentence(rng, rng.randint(3, 6))
        return " ".join([phrase] * rng.randint(3, 8))                      # repetitive
    if kind < 0.7:
        return sentence(rng, rng.randint(30, 70), cjk=0.5)                # mixed zh / en
    return sentence(rng, rng.randint(30, 90))


def wrap(rng: random.Random, think: str, answer: str) -> str:
    r = rng.random()
    if r < 0.55:
        return f"<think>\n{think}\n</think>\n<answer>\n{answer}\n</answer>"
    if r < 0.7:
        return f"<think>{think}</think><answer>{answer}</answer>"
    if r < 0.8:
        return f"{think}\n</think>\n<answer>{answer}</answer>"                # template pre-filled <think>
    if r < 0.88:
        return f"<think>{think}</think>{answer}"                              # no answer tag
    if r < 0.94:
        return f"<think>{think}"                                              # truncated
    return f"{think} {answer}"


def make_data(n: int, seed: int, image_dir: str, group: int = 8) -> Dict[str, Any]:
    from PIL import Image

    rng = random.Random(seed)
    sizes = [(640, 480), (1280, 720), (500, 375), (800, 1200), (333, 444), (1920, 1080), (256, 256), (1000, 700)]
    paths = []
    for i, (w, h) in enumerate(sizes):
        p = os.path.join(image_dir, f"img{i}.png")
        Image.new("RGB", (w, h), (i * 30 % 255, 80, 160)).save(p)
        paths.append(p)

    general, tokens, golds_num, num_comps, math_comps, math_golds = [], [], [], [], [], []
    box_comps, box_golds, box_images, box_sizes, box_clean, multi_comps, multi_golds = [], [], [], [], [], [], []
    json_comps, schemas, teacher_comps, teacher_golds, messages = [], [], [], [], []
    schema = {"type": "object", "required": ["name", "count", "colour"],
              "properties": {"name": {"type": "string"}, "count": {"type": "integer"}, "colour": {"type": "string"}}}
    for _group in range((n + group - 1) // group):
        # what a GRPO group shares: the prompt's columns (gold answers, image, schema, teacher answer)
        msg = [{"role": "user", "content": ("图中有几只猫？" if rng.random() < 0.3 else "How many cats are there?")}]
        g = rng.choice([rng.randint(0, 2000), round(rng.uniform(-50, 50), 2)])
        a, b = rng.randint(1, 9), rng.randint(2, 12)
        k = rng.randrange(len(sizes))
        w, h = sizes[k]
        x1, y1 = rng.randint(0, w // 2), rng.randint(0, h // 2)
        gx = [x1, y1, x1 + rng.randint(10, w // 2), y1 + rng.randint(10, h // 2)]
        rh, rw = smart_resize(h, w, 28, 3136, 12845056)
        gold_boxes = []
        for _ in range(rng.randint(1, 6)):
            bx, by = rng.randint(0, 800), rng.randint(0, 800)
            gold_boxes.append([bx, by, bx + rng.randint(20, 190), by + rng.randint(20, 190)])
        distinct = rng.random() < 0.5   # words without repeats: where pltrdy rouge (set-based) agrees with ROUGE-L
        teacher = " ".join(rng.sample(WORDS, rng.randint(8, 30))) if distinct else sentence(rng, rng.randint(8, 40))
        for _j in range(group):
            if len(general) == n:
                break
            think = reasoning(rng)
            general.append(wrap(rng, think, sentence(rng, rng.randint(1, 6))))
            tokens.append([rng.randrange(3000) for _ in range(int(len(general[-1]) / 3.5))])
            messages.append(msg)
            # numeric answers
            pred = g if rng.random() < 0.6 else (g + rng.choice([1, -3, 0.5]))
            golds_num.append(str(g))
            num_comps.append(wrap(rng, think, f"The answer is {pred}"))
            # math answers (latex)
            right = rng.random() < 0.6
            ans = rng.choice([f"\\frac{{{a}}}{{{b}}}", f"{a}/{b}", f"{a / b:.6g}"]) if right else f"\\frac{{{a + 1}}}{{{b}}}"
            math_comps.append(wrap(rng, think, f"\\boxed{{{ans}}}"))
            math_golds.append(f"\\frac{{{a}}}{{{b}}}")
            # one box, Qwen2.5-VL resized frame, gold in original pixels
            jit = [rng.randint(-30, 30) for _ in range(4)]
            px = [round(gx[0] * rw / w) + jit[0], round(gx[1] * rh / h) + jit[1], round(gx[2] * rw / w) + jit[2],
                  round(gx[3] * rh / h) + jit[3]]
            body = (f'```json\n[{{"bbox_2d": [{px[0]}, {px[1]}, {px[2]}, {px[3]}], "label": "cat"}}]\n```'
                    if rng.random() < 0.5 else f"[{px[0]}, {px[1]}, {px[2]}, {px[3]}]")
            box_comps.append(f"<think>{think}</think><answer>{body}</answer>")
            box_golds.append(str(gx))
            box_images.append([{"bytes": None, "path": paths[k]}])
            box_sizes.append([w, h])
            # where VLM-R1's pixel convention gives the same number: a valid box overlapping by > 1 px or not at all
            ox = min(px[2] * w / rw, gx[2]) - max(px[0] * w / rw, gx[0])
            oy = min(px[3] * h / rh, gx[3]) - max(px[1] * h / rh, gx[1])
            box_clean.append(px[0] >= 0 and px[1] >= 0 and px[2] > px[0] and px[3] > px[1]
                             and ((ox > 1 and oy > 1) or ox <= 0 or oy <= 0))
            # several boxes, norm1000
            preds = [[v + rng.randint(-15, 15) for v in bb] for bb in gold_boxes if rng.random() < 0.8]
            preds += [[rng.randint(0, 500)] * 2 + [rng.randint(600, 999)] * 2 for _ in range(rng.randint(0, 2))]
            multi_comps.append("<answer>" + ", ".join(f'{{"bbox_2d": {p}, "label": "cat"}}' for p in preds)
                               + "</answer>")
            multi_golds.append(str(gold_boxes))
            # json
            obj = '{"name": "%s", "count": %s, "colour": "%s"}' % (rng.choice(WORDS), rng.choice(["3", '"three"', "7"]),
                                                                   rng.choice(WORDS))
            if rng.random() < 0.2:
                obj = obj[:-1]                                                # the missing bracket
            json_comps.append(f"<think>{think}</think>```json\n{obj}\n```")
            schemas.append(schema)
            # distillation: lower-case words only, so pltrdy rouge tokenises like swift-ext
            tw = teacher.split()
            student = [x for x in tw if rng.random() < 0.8]
            if distinct:
                student += rng.sample([x for x in WORDS if x not in tw], min(rng.randint(0, 8), len(WORDS) - len(tw)))
            else:
                student += sentence(rng, rng.randint(0, 8)).split()
            teacher_golds.append(teacher)
            teacher_comps.append(f"<answer>{' '.join(student)}</answer>")
    return dict(general=general, tokens=tokens, messages=messages, num_comps=num_comps, num_golds=golds_num,
                math_comps=math_comps, math_golds=math_golds, box_comps=box_comps, box_golds=box_golds,
                box_images=box_images, box_sizes=box_sizes, box_clean=box_clean, multi_comps=multi_comps, multi_golds=multi_golds,
                json_comps=json_comps, schemas=schemas, teacher_comps=teacher_comps, teacher_golds=teacher_golds)


# -- anchors re-implemented from their published code -----------------------------------------------------
def openr1_tag_count(completions: Sequence[str], **_) -> List[float]:
    """open-r1 ``tag_count_reward`` (src/open_r1/rewards.py)."""
    def count_tags(text: str) -> float:
        count = 0.0
        if text.count("<think>\n") == 1:
            count += 0.25
        if text.count("\n</think>\n") == 1:
            count += 0.25
        if text.count("\n<answer>\n") == 1:
            count += 0.25
        if text.count("\n</answer>") == 1:
            count += 0.25
        return count
    return [count_tags(c) for c in completions]


def openr1_reasoning_steps(completions: Sequence[str], **_) -> List[float]:
    """open-r1 ``reasoning_steps_reward``."""
    pattern = r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)"
    return [min(1.0, len(re.findall(pattern, c)) / 3) for c in completions]


def vlmr1_iou(completions: Sequence[str], solution: Sequence[str], images: Sequence[Any], **_) -> List[float]:
    """VLM-R1 ``Qwen2VLModule.iou_reward``: first integer box in <answer>, rescaled from the model input
    size (``image_grid_thw * 14``, i.e. the smart-resized size) to the image opened with PIL."""
    from PIL import Image

    def iou(box1, box2):
        inter_x1 = max(box1[0], box2[0])
        inter_y1 = max(box1[1], box2[1])
        inter_x2 = min(box1[2] - 1, box2[2] - 1)
        inter_y2 = min(box1[3] - 1, box2[3] - 1)
        if inter_x1 < inter_x2 and inter_y1 < inter_y2:
            inter = (inter_x2 - inter_x1 + 1) * (inter_y2 - inter_y1 + 1)
        else:
            inter = 0
        union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
        return float(inter) / union

    out = []
    for content, sol, imgs in zip(completions, solution, images):
        image = Image.open(imgs[0]["path"])
        image_width, image_height = image.size
        input_height, input_width = smart_resize(image_height, image_width, 28, 3136, 12845056)
        sol = [int(v) for v in re.findall(r"\d+", sol)]
        reward = 0.0
        try:
            m = re.search(r"<answer>(.*?)</answer>", content, re.DOTALL)
            if m:
                b = re.search(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]", m.group(1).strip())
                if b:
                    bbox = [int(b.group(k)) for k in range(1, 5)]
                    bbox = [bbox[0] / input_width * image_width, bbox[1] / input_height * image_height,
                            bbox[2] / input_width * image_width, bbox[3] / input_height * image_height]
                    reward = iou(bbox, sol)
        except Exception:
            pass
        out.append(reward)
    return out


def rouge_pkg(completions: Sequence[str], solution: Sequence[str], **_) -> List[float]:
    from rouge import Rouge

    rouge = Rouge(metrics=["rouge-l"])
    out = []
    for c, s in zip(completions, solution):
        text = re.sub(r"</?answer>", "", c).strip()
        if not text:
            out.append(0.0)
            continue
        sc = rouge.get_scores(text, s)[0]["rouge-l"]
        p, r = sc["p"], sc["r"]
        out.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    return out


def nltk_chrf(completions: Sequence[str], solution: Sequence[str], **_) -> List[float]:
    from nltk.translate.chrf_score import sentence_chrf

    return [sentence_chrf(s, re.sub(r"</?answer>", "", c), beta=2.0) for c, s in zip(completions, solution)]


# -- documents and detection ------------------------------------------------------------------------------
DOC_WORDS = ("Invoice", "total", "12/03/1998", "$1,250.00", "Smith & Co.", "Straße", "東京都", "naïve", "42", "N/A",
             "Department of Health", "page 3", "Fig. 2", "2,310", "0.75", "Yes", "no")


def _typo(rng: random.Random, text: str, k: int) -> str:
    chars = list(text)
    for _ in range(k):
        i = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4 and i < len(chars):
            chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz ")
        elif op < 0.7 and i < len(chars):
            del chars[i]
        else:
            chars.insert(i, rng.choice("abcdefghijklmnopqrstuvwxyz"))
    return "".join(chars)


def make_doc_data(n: int, seed: int, group: int = 8) -> Dict[str, Any]:
    """DocVQA-style answers (anls), OCR lines (cer / wer) and ChartQA answers (relaxed accuracy): a GRPO group
    shares its gold; completions are right, cased or spaced differently, mistyped, or wrong."""
    rng = random.Random(seed)
    out: Dict[str, List[Any]] = {k: [] for k in ("vqa_comps", "vqa_golds", "ocr_comps", "ocr_golds", "chart_comps",
                                                  "chart_golds")}
    for _ in range((n + group - 1) // group):
        golds = [" ".join(rng.sample(DOC_WORDS, rng.randint(1, 3))) for _ in range(rng.choice([1, 1, 2]))]
        line = " ".join(rng.choice(DOC_WORDS + tuple(WORDS)) for _ in range(rng.randint(8, 30)))
        if rng.random() < 0.5:
            value = rng.choice([round(rng.uniform(0, 100), 1), rng.randint(0, 5000), round(rng.uniform(0, 1), 2)])
            chart = f"{value}%" if rng.random() < 0.2 else str(value)
        else:
            chart = rng.choice(["Yes", "No", "Brazil", "2019", "Q3", "Male"])
        for _ in range(group):
            if len(out["vqa_comps"]) == n:
                break
            g = rng.choice(golds)
            r = rng.random()
            ans = g if r < 0.4 else g.upper() if r < 0.5 else _typo(rng, g, rng.randint(1, 4)) if r < 0.8 else \
                rng.choice(DOC_WORDS)
            out["vqa_comps"].append(f"<think>{sentence(rng, rng.randint(5, 30))}</think><answer>{ans}</answer>")
            out["vqa_golds"].append(golds)
            out["ocr_comps"].append(_typo(rng, line, rng.randint(0, 12)))
            out["ocr_golds"].append(line)
            try:
                num = float(chart.rstrip("%"))
                pred = rng.choice([chart, f"{num * rng.uniform(0.9, 1.1):.4g}" + ("%" if chart.endswith("%") else ""),
                                   str(num * 2)])
            except ValueError:
                pred = rng.choice([chart, chart.lower(), "Canada", chart + "."])
            out["chart_comps"].append(f"<think>{sentence(rng, rng.randint(5, 30))}</think><answer>{pred}</answer>")
            out["chart_golds"].append(chart)
    return out


DET_LABELS = ("person", "car", "dog", "cat", "bicycle", "bus")


def make_det_data(n: int, seed: int, group: int = 8) -> Dict[str, Any]:
    """Detection: per prompt an image with 1-8 labelled boxes (a crowd region now and then); completions find
    most of them with jitter, some with a wrong label, plus false alarms, with confidences or without."""
    rng = random.Random(seed)
    comps, golds, sizes, parsed = [], [], [], []
    for _ in range((n + group - 1) // group):
        w, h = rng.choice([(640, 480), (1280, 720), (500, 375)])
        gold = []
        for _ in range(rng.randint(1, 8)):
            x, y = rng.randint(0, w - 60), rng.randint(0, h - 60)
            gold.append(([x, y, x + rng.randint(20, min(300, w - x)), y + rng.randint(20, min(300, h - y))],
                         rng.choice(DET_LABELS), bool(gold) and rng.random() < 0.05))   # never all crowd
        for _ in range(group):
            if len(comps) == n:
                break
            preds = []
            for box, lab, _c in gold:
                if rng.random() < 0.8:
                    j = [rng.randint(-12, 12) for _ in range(4)]
                    preds.append(([box[k] + j[k] for k in range(4)], lab if rng.random() < 0.9 else
                                  rng.choice(DET_LABELS), round(rng.random(), 3)))
            for _ in range(rng.randint(0, 3)):
                x, y = rng.randint(0, w - 50), rng.randint(0, h - 50)
                preds.append(([x, y, x + 40, y + 40], rng.choice(DET_LABELS), round(rng.random(), 3)))
            rng.shuffle(preds)
            scored = rng.random() < 0.5
            items = [{"bbox_2d": b, "label": lab, **({"score": sc} if scored else {})} for b, lab, sc in preds]
            comps.append("<answer>```json\n" + json.dumps(items) + "\n```</answer>")
            golds.append(json.dumps([{"bbox_2d": b, "label": lab, "iscrowd": int(c)} for b, lab, c in gold]))
            sizes.append([w, h])
            parsed.append(([(b, lab, sc if scored else None) for b, lab, sc in preds], gold))
    return {"det_comps": comps, "det_golds": golds, "det_sizes": sizes, "det_parsed": parsed}


def _answer(text: str) -> str:
    m = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    return m[-1].strip() if m else text.strip()


def lmms_anls(completions: Sequence[str], solution: Sequence[Any], **_) -> List[float]:
    """lmms-eval ``anls`` on the ``<answer>`` content, as a reward function would call it."""
    from lmms_eval_reference import anls

    return [float(anls(golds, [_answer(c)])["anls"]) for c, golds in zip(completions, solution)]


def lmms_relaxed(completions: Sequence[str], solution: Sequence[str], **_) -> List[float]:
    """ChartQA ``relaxed_correctness`` (lmms-eval's copy) on the ``<answer>`` content."""
    from lmms_eval_reference import relaxed_correctness

    return [float(relaxed_correctness(_answer(c), g)) for c, g in zip(completions, solution)]


def jiwer_reward(measure: str) -> Callable[..., List[float]]:
    def fn(completions: Sequence[str], solution: Sequence[str], **_) -> List[float]:
        import jiwer

        f = getattr(jiwer, measure)
        return [max(0.0, 1.0 - f(g, c)) for c, g in zip(completions, solution)]
    return fn


def _coco_eval(images: Sequence[Any], stat: int = 0) -> float:
    """pycocotools on (predictions, references) images, boxes x1y1x2y2 with labels: stats[stat]."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat = {lab: k + 1 for k, lab in enumerate(DET_LABELS)}
    gt = {"images": [{"id": i + 1} for i in range(len(images))],
          "categories": [{"id": v, "name": k} for k, v in cat.items()], "annotations": []}
    dts = []
    for i, (preds, gold) in enumerate(images):
        for b, lab, crowd in gold:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": cat[lab],
                                      "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                      "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": int(crowd)})
        for b, lab, sc in preds:
            dts.append({"image_id": i + 1, "category_id": cat[lab], "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                        "score": 1.0 if sc is None else sc})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not dts:
            return 0.0
        ev = COCOeval(coco_gt, coco_gt.loadRes(dts), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[stat])


def vlmr1_map(completions: Sequence[str], det_parsed: Sequence[Any], **_) -> List[float]:
    """VLM-R1's ``map_reward`` way: a fresh COCO + COCOeval per completion (stats[0]); both sides empty -> 1,
    one side empty -> 0; COCO's -1 (no counted reference) mapped as the reward maps it."""
    out = []
    for preds, gold in det_parsed:
        if not gold or not preds:
            out.append(float(not gold and not preds))
            continue
        v = _coco_eval([(preds, gold)])
        out.append(v if v >= 0 else 0.0)
    return out


# -- timing -----------------------------------------------------------------------------------------------
def best_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def agree(a: Sequence[Any], b: Sequence[Any], mask: Sequence[bool]) -> str:
    pairs = [(x, y) for x, y, m in zip(a, b, mask) if m and x is not None and y is not None]
    if not pairs:
        return "-"
    same = sum(1 for x, y in pairs if abs(float(x) - float(y)) <= 1e-6)
    return f"{same}/{len(pairs)}"


def pin_one_core() -> str:
    try:
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="completions per batch")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per reward (best is kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--group", type=int, default=8, help="completions per prompt (GRPO num_generations)")
    ap.add_argument("--markdown", help="also write the tables to this file")
    ap.add_argument("--no-math", action="store_true", help="skip the math-verify rows (slow)")
    ap.add_argument("--only", help="only the anchor rows whose purpose contains this text (e.g. 'mAP')")
    args = ap.parse_args(argv)

    pinned = pin_one_core()
    from swift_ext import cpu_compat

    cpu_compat.apply()  # importing swift pulls torchvision in; on CPU-only torch it needs the shim
    console.print(f"[bold]importing ms-swift anchors[/] ({pinned})")
    from swift.rewards.orm import Format, MathAccuracy as SwiftMath, RepetitionPenalty, SoftOverlong
    from trl.rewards import get_soft_overlong_punishment

    tmp = tempfile.mkdtemp(prefix="bench-rewards-")
    d = make_data(args.n, args.seed, tmp, args.group)
    dd = make_doc_data(args.n, args.seed, args.group)
    det = make_det_data(args.n, args.seed, args.group)
    n = args.n
    L, C = 256, 64

    trl_fn = get_soft_overlong_punishment(L, C)

    def ours(spec):
        return configure(spec)()

    def lengths_ok(tok):
        return [len(t) <= L for t in tok]

    no_cjk = [not re.search("[\u4e00-\u9fff]", c) for c in d["general"]]
    starts_think = [c.startswith("<think>") and c.count("<think>") == 1 and c.count("</think>") == 1
                    and c.count("<answer>") == 1 and c.count("</answer>") == 1
                    and bool(re.search(r"<answer>\s*\S", c)) for c in d["general"]]
    same_steps = [nc and len(re.findall(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", c))
                  == len(re.findall(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", c, re.M))
                  for c, nc in zip(d["general"], no_cjk)]
    all_rows = [True] * n

    def distinct_words(text):
        ws = re.sub(r"</?answer>", " ", text).split()
        return len(ws) == len(set(ws))

    no_repeats = [distinct_words(c) and distinct_words(t) for c, t in zip(d["teacher_comps"], d["teacher_golds"])]

    pairs = [
        # (label, our spec, anchor name, anchor callable, completions, kwargs, agreement filter, filter name)
        ("format", "think_format", "ms-swift format", Format(), d["general"], {}, starts_think,
         "one <think> block first, one non-empty answer"),
        ("repetition", "ngram_repetition", "ms-swift repetition",
         RepetitionPenalty(args=SimpleNamespace(repetition_n_grams=3, repetition_max_penalty=-1.0)), d["general"], {},
         no_cjk, "no CJK text"),
        ("soft overlong", f"length_budget:max_length={L},soft_cache={C}", "ms-swift soft_overlong",
         SoftOverlong(args=SimpleNamespace(soft_max_length=L, soft_cache_length=C)), d["general"],
         {"response_token_ids": d["tokens"]}, lengths_ok(d["tokens"]), f"length <= {L} (ms-swift goes below -1)"),
        ("soft overlong", f"length_budget:max_length={L},soft_cache={C}", "TRL soft_overlong_punishment",
         (lambda completions, response_token_ids, **_: trl_fn(completion_ids=response_token_ids)), d["general"],
         {"response_token_ids": d["tokens"]}, all_rows, "all"),
        ("tag count", "tag_count:newlines=true,allow_prefilled=false", "open-r1 tag_count", openr1_tag_count,
         d["general"], {}, all_rows, "all"),
        ("reasoning steps", "reasoning_steps", "open-r1 reasoning_steps", openr1_reasoning_steps, d["general"], {},
         same_steps, "no CJK, no numbered line after the first (open-r1 has no re.M)"),
        ("IoU (Qwen2.5-VL)", "iou:frame=qwen2_5_vl,gold_frame=pixels", "VLM-R1 iou_reward", vlmr1_iou,
         d["box_comps"], {"solution": d["box_golds"], "images": d["box_images"]}, d["box_clean"],
         "valid box, overlap > 1 px or none (VLM-R1 counts whole pixels)"),
        ("ROUGE-L", "teacher_similarity", "rouge (pltrdy) ROUGE-L F1", rouge_pkg, d["teacher_comps"],
         {"solution": d["teacher_golds"]}, no_repeats, "no word repeated on either side (pltrdy counts distinct words)"),
        ("chrF", "teacher_similarity:metric=chrf", "nltk sentence_chrf (beta 2)", nltk_chrf, d["teacher_comps"],
         {"solution": d["teacher_golds"]}, all_rows, "all"),
        ("ANLS (DocVQA)", "anls", "lmms-eval anls", lmms_anls, dd["vqa_comps"], {"solution": dd["vqa_golds"]},
         all_rows, "all"),
        ("CER (OCR)", "cer:extract=none", "jiwer cer (1 - cer, clipped)", jiwer_reward("cer"), dd["ocr_comps"],
         {"solution": dd["ocr_golds"]}, all_rows, "all"),
        ("WER (OCR)", "wer:extract=none", "jiwer wer (1 - wer, clipped)", jiwer_reward("wer"), dd["ocr_comps"],
         {"solution": dd["ocr_golds"]}, all_rows, "all"),
        ("relaxed accuracy (ChartQA)", "relaxed_accuracy", "ChartQA relaxed_correctness (lmms-eval)", lmms_relaxed,
         dd["chart_comps"], {"solution": dd["chart_golds"]}, all_rows, "all"),
        ("COCO mAP (detection)", "map:frame=pixels,gold_frame=pixels", "pycocotools COCOeval per completion "
         "(VLM-R1 map_reward)", vlmr1_map, det["det_comps"], {"solution": det["det_golds"],
                                                              "image_size": det["det_sizes"],
                                                              "det_parsed": det["det_parsed"]}, all_rows, "all"),
    ]
    import anchors_verifiable  # tool_call and ifeval against ToolRL and lm-eval (bench/anchors_verifiable.py)

    pairs += anchors_verifiable.pairs(n, args.seed, args.group)
    if not args.no_math:
        swift_math = SwiftMath()
        pairs += [
            ("numeric answer", "numeric", "ms-swift accuracy", swift_math, d["num_comps"],
             {"solution": d["num_golds"]}, [c.count("<answer>") == 1 and c.count("</answer>") == 1
                                             for c in d["num_comps"]], "an <answer> block"),
            ("math answer", "math_accuracy", "ms-swift accuracy", swift_math, d["math_comps"],
             {"solution": d["math_golds"]}, [c.count("<answer>") == 1 and c.count("</answer>") == 1
                                              for c in d["math_comps"]], "an <answer> block"),
        ]

    if args.only:
        pairs = [p for p in pairs if args.only.lower() in p[0].lower()]
    rows = []
    with progress() as bar:
        task = bar.add_task("anchors", total=len(pairs))
        for label, spec, anchor_name, anchor, comps, kw, mask, mask_name in pairs:
            r = ours(spec)
            mine = r(comps, **kw) if spec != "math_accuracy" else None
            theirs = anchor(comps, **kw)
            reps = args.repeat if "math" not in spec and anchor_name != "ms-swift accuracy" else 1
            if spec == "math_accuracy":
                # it remembers verdicts (and its workers parsed golds): time a new instance on golds and answers
                # it has not seen, with the worker pool already started on other rows (as from a run's step 2)
                warm = make_data(64, args.seed + 1, tmp, args.group)
                ours(spec)(warm["math_comps"], solution=warm["math_golds"])
                t0 = time.perf_counter()
                mine = ours(spec)(comps, **kw)
                t_ours = time.perf_counter() - t0
            else:
                t_ours = best_time(lambda: (anchors_verifiable.forget(r), r(comps, **kw)), reps)
            t_anchor = best_time(lambda: anchor(comps, **kw), reps)
            rows.append((label, spec, anchor_name, n / t_ours, n / t_anchor, t_anchor / t_ours, t_ours * 1000,
                         agree(mine, theirs, mask), mask_name))
            bar.advance(task)

    # every registered reward: one batch of n, default parameters, with the columns it reads
    inputs = {
        "numeric": (d["num_comps"], {"solution": d["num_golds"]}),
        "mcq": ([f"<answer>({random.Random(i).choice('ABCD')})</answer>" for i in range(n)], {"solution": ["B"] * n}),
        "yes_no": ([c.replace("The answer is", "Yes, the answer is") for c in d["num_comps"]], {"solution": ["yes"] * n}),
        "counting": (d["num_comps"], {"solution": d["num_golds"]}),
        "set_accuracy": (d["general"], {"solution": [["cat", "dog"]] * n}),
        "iou": (d["box_comps"], {"solution": d["box_golds"], "images": d["box_images"]}),
        "giou": (d["box_comps"], {"solution": d["box_golds"], "images": d["box_images"]}),
        "iou_threshold": (d["box_comps"], {"solution": d["box_golds"], "images": d["box_images"]}),
        "point_in_box": (d["box_comps"], {"solution": d["box_golds"], "image_size": d["box_sizes"]}),
        "box_f1": (d["multi_comps"], {"solution": d["multi_golds"]}),
        "json_valid": (d["json_comps"], {}),
        "json_schema": (d["json_comps"], {"schema": d["schemas"]}),
        "teacher_similarity": (d["teacher_comps"], {"solution": d["teacher_golds"]}),
        "exact_match": (d["general"], {"solution": ["the cat"] * n}),
        "math_accuracy": (d["math_comps"], {"solution": d["math_golds"]}),
        **anchors_verifiable.inputs(n, args.seed, args.group),
        "anls": (dd["vqa_comps"], {"solution": dd["vqa_golds"]}),
        "cer": (dd["ocr_comps"], {"solution": dd["ocr_golds"]}),
        "wer": (dd["ocr_comps"], {"solution": dd["ocr_golds"]}),
        "relaxed_accuracy": (dd["chart_comps"], {"solution": dd["chart_golds"]}),
        "map": (det["det_comps"], {"solution": det["det_golds"], "image_size": det["det_sizes"]}),
        "ap50": (det["det_comps"], {"solution": det["det_golds"], "image_size": det["det_sizes"]}),
    }
    default = (d["general"], {"response_token_ids": d["tokens"], "messages": d["messages"]})
    latency = []
    names = [] if args.only else [nm for nm in plugins.registry("reward")
                                   if not (args.no_math and nm == "math_accuracy")]
    with progress() as bar:
        task = bar.add_task("every reward", total=len(names))
        for name in names:
            comps, kw = inputs.get(name, default)
            if name in ("iou", "giou", "iou_threshold"):
                spec = f"{name}:frame=qwen2_5_vl,gold_frame=pixels"
            elif name == "point_in_box":
                spec = "point_in_box:frame=qwen2_5_vl,gold_frame=pixels"
            elif name == "box_f1":
                spec = "box_f1:gold_frame=same"
            elif name in ("map", "ap50"):
                spec = f"{name}:frame=pixels,gold_frame=pixels"
            else:
                spec = name
            r = ours(spec)
            if name == "math_accuracy":
                r(comps[:4], solution=kw["solution"][:4])                      # start the worker outside the timing
                per = []
                for c, s in zip(comps, kw["solution"]):
                    t0 = time.perf_counter()
                    r([c], solution=[s])
                    per.append(time.perf_counter() - t0)
                latency.append((spec, sum(per) * 1000, max(per) * 1000, statistics.median(per) * 1000))
            else:
                r(comps, **kw)                                                  # warm caches (image sizes, schemas)
                t = best_time(lambda: (anchors_verifiable.forget(r), r(comps, **kw)), args.repeat)
                latency.append((spec, t * 1000, None, None))
            bar.advance(task)

    # pathological math: math-verify's own limits stop these after ~5 s each in-process (ms-swift's
    # accuracy); swift-ext kills its worker after `timeout` (1 s) and scores 0
    # COCO AP over the whole batch as one data set (n images): swift-ext's coco_average_precision vs one COCOeval
    data_level = []
    if not args.only or args.only.lower() in "coco map (detection)":
        from swift_ext.rewards.detection import coco_average_precision

        imgs = det["det_parsed"]
        ours_ap, coco_ap = coco_average_precision(imgs), _coco_eval(imgs)
        t_o = best_time(lambda: coco_average_precision(imgs), args.repeat)
        t_a = best_time(lambda: _coco_eval(imgs), args.repeat)
        data_level.append((len(imgs), t_o * 1000, t_a * 1000, t_a / t_o, ours_ap, coco_ap))

    math_adv = []
    if not args.no_math and not args.only:
        hard = [r"\boxed{2^{2^{2^{2^{30}}}}}", r"\boxed{(10^{10})!}", r"\boxed{9^{9^{9^{9}}}-1}",
                r"\boxed{\sum_{k=1}^{10^{9}} k^{k}}"]
        comps = []
        for h in hard:
            comps += [f"<answer>{h}</answer>", "<answer>0.5</answer>"]     # 0.5 vs 1/2: needs math-verify
        golds = ["\\frac{1}{2}"] * len(comps)
        mine = ours("math_accuracy")
        mine(comps[1:2], solution=golds[1:2])                                  # worker up
        with progress() as bar:
            task = bar.add_task("pathological math", total=2 * len(comps))
            for label, fn in (("swift-ext `math_accuracy` (timeout 1 s)", mine), ("ms-swift `accuracy`", swift_math)):
                per = []
                for c, g in zip(comps, golds):
                    t0 = time.perf_counter()
                    fn([c], solution=[g])
                    per.append(time.perf_counter() - t0)
                    bar.advance(task)
                math_adv.append((label, sum(per), max(per), max(per[0::2]), max(per[1::2])))
        # the same 8 as one call (a GRPO group): the deadline is per call, so about one timeout in all
        from swift_ext.rewards.pool import get_pool

        get_pool().wait_ready()
        t0 = time.perf_counter()
        mine(comps, solution=golds)
        group_s = time.perf_counter() - t0
        math_adv.append(("swift-ext `math_accuracy`, the 8 as one call (a GRPO group)", group_s, group_s,
                         group_s, group_s))

    out = []
    out.append(f"n = {n} completions per batch ({n // args.group} prompts x {args.group} generations), best of "
               f"{args.repeat} runs, {pinned}, Python {sys.version.split()[0]}, load average at the end "
               f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    out.append("| purpose | swift-ext reward | anchor | swift-ext compl/s | anchor compl/s | ratio | swift-ext batch ms "
               "| scores agree | agreement counted on |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---|")
    for label, spec, anchor_name, cs_o, cs_a, ratio, ms, ag, mask_name in rows:
        out.append(f"| {label} | `{spec}` | {anchor_name} | {cs_o:,.0f} | {cs_a:,.0f} | {ratio:.2f}x | {ms:.1f} | {ag} "
                   f"| {mask_name} |")
    for n_img, ms_o, ms_a, ratio, a_o, a_c in data_level:
        out.append("")
        out.append(f"| COCO AP over one data set of {n_img} images | swift-ext `coco_average_precision` ms | "
                   f"pycocotools COCOeval ms | ratio | swift-ext AP | COCOeval AP |")
        out.append("|---|---:|---:|---:|---:|---:|")
        out.append(f"| .50:.05:.95, maxDets 100 | {ms_o:.1f} | {ms_a:.1f} | {ratio:.2f}x | {a_o:.6f} | {a_c:.6f} |")
    if latency:
        out.append("")
        out.append(f"| reward (one batch of {n}) | batch ms | < 50 ms | slowest single completion ms | median ms |")
        out.append("|---|---:|---|---:|---:|")
    for spec, ms, worst, med in latency:
        ok = "yes" if ms < 50 else ("n/a (math)" if worst is not None else "NO")
        out.append(f"| `{spec}` | {ms:.1f} | {ok} | {'-' if worst is None else f'{worst:.0f}'} | "
                   f"{'-' if med is None else f'{med:.1f}'} |")
    if math_adv:
        out.append("")
        out.append("| 4 pathological + 4 normal math completions | total s | slowest s | slowest pathological s "
                   "| slowest normal s (after a kill: includes the worker restart) |")
        out.append("|---|---:|---:|---:|---:|")
        for label, tot, worst, worst_bad, worst_ok in math_adv:
            out.append(f"| {label} | {tot:.2f} | {worst:.2f} | {worst_bad:.2f} | {worst_ok:.2f} |")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
