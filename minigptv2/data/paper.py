"""The paper's datasets under one data root, by the names a stage's mixture uses (spec §4.1, §5).

``DATASETS`` maps each name to a function of the data root that builds its reader; the names are
the reference's builder keys (``refcocop`` is RefCOCO+, ``invrefcoco`` the identify variant) plus
``laion``, ``cc3m``, ``sbu`` and ``grit_*`` for stage 1, whose builders were never released. A
stage config names datasets and ratios (``configs/paper/stage*.yaml``)::

    data: {source: paper, path: /data/minigptv2, mix: {refcoco: 25, gqa: 50, ...}}

The files are expected where each dataset's own release puts them, under these folders of the
root (the layout of the reference's ``dataset/README_MINIGPTv2_FINETUNE.md``, one folder each)::

    coco/train2014/COCO_train2014_*.jpg    COCO 2014 train (RefCOCO*, LLaVA, multi-task conv.)
    coco/val2014/, coco/train2017/         VQAv2 val images; A-OKVQA images
    coco_captions/coco_karpathy_train.json           LAVIS; image paths relative to coco/
    vqav2/vqa_train.json, vqav2/vqa_val.json          LAVIS; image paths relative to coco/
    okvqa/okvqa_train.json                            LAVIS; image paths relative to coco/
    aokvqa/aokvqa_v1p0_train.json
    gqa/train_balanced_questions.json, gqa/images/
    ocrvqa/dataset.json, ocrvqa/images/
    textcaps/TextCaps_0.1_train.json, textcaps/train_images/
    refcoco/{refcoco,refcoco+,refcocog}/refs(unc|umd).p + instances.json
    vg/region_descriptions.json, vg/image_data.json, vg/images/VG_100K*/
    flickr30k/flickr30k_entities/{Sentences,Annotations,train.txt}, flickr30k/images/
    llava/{detail_23k,complex_reasoning_77k,conversation_58k}.json
    multitask_conversation/multitask_conversation.json
    unnatural_instructions/filtered_unnatural_instruction.json
    laion/*.tar, cc3m/*.tar, sbu/*.tar, grit/*.tar   webdataset shards (img2dataset output)

A folder elsewhere can be linked into place (``ln -s /big/disk/gqa ROOT/gqa``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from minigptv2.data.coco_captions import COCOCaptions
from minigptv2.data.flickr30k import Flickr30kEntities
from minigptv2.data.gqa import GQA
from minigptv2.data.grit import GRIT
from minigptv2.data.llava import LLaVA
from minigptv2.data.mixing import Mixture
from minigptv2.data.multitask_conversation import MultitaskConversation
from minigptv2.data.ocrvqa import OCRVQA
from minigptv2.data.reader import Reader
from minigptv2.data.refcoco import RefCOCO
from minigptv2.data.stream import Stream
from minigptv2.data.textcaps import TextCaps
from minigptv2.data.unnatural import UnnaturalInstructions
from minigptv2.data.vg import VisualGenomeRegions
from minigptv2.data.vqa import AOKVQA, LavisVQA
from minigptv2.data.webdataset_captions import WebDatasetCaptions
from minigptv2.errors import ConfigError, DataError

COCO_TRAIN = "coco/train2014"


def _shards(root: Path, folder: str) -> list[Path]:
    shards = sorted((root / folder).glob("*.tar"))
    if not shards:
        raise DataError(f"no webdataset shards (*.tar) in {root / folder}")
    return shards


def _refcoco(dataset: str, task: str) -> Callable[[Path], Reader]:
    return lambda root: RefCOCO(root / "refcoco" / dataset, root / COCO_TRAIN, dataset, task)


def _flickr(task: str) -> Callable[[Path], Reader]:
    return lambda root: Flickr30kEntities(
        root / "flickr30k/flickr30k_entities", root / "flickr30k/images", task
    )


def _llava(kind: str, file: str) -> Callable[[Path], Reader]:
    return lambda root: LLaVA(root / "llava" / file, root / COCO_TRAIN, kind)


def _captions(source: str) -> Callable[[Path], Reader]:
    return lambda root: WebDatasetCaptions(_shards(root, source), source)


def _grit(task: str) -> Callable[[Path], Reader]:
    return lambda root: GRIT(_shards(root, "grit"), task)


DATASETS: dict[str, Callable[[Path], Reader]] = {
    # Stage 1 weakly-labelled data.
    "laion": _captions("laion"),
    "cc3m": _captions("cc3m"),
    "sbu": _captions("sbu"),
    "grit_grounding": _grit("grounding"),
    "grit_refer": _grit("refer"),
    "grit_identify": _grit("identify"),
    # Fine-grained data (stages 1-3).
    "coco_caption": lambda root: COCOCaptions(
        root / "coco_captions/coco_karpathy_train.json", root / "coco"
    ),
    "textcaps_caption": lambda root: TextCaps(
        root / "textcaps/TextCaps_0.1_train.json", root / "textcaps/train_images"
    ),
    "refcoco": _refcoco("refcoco", "refer"),
    "refcocop": _refcoco("refcoco+", "refer"),
    "refcocog": _refcoco("refcocog", "refer"),
    "invrefcoco": _refcoco("refcoco", "identify"),
    "invrefcocop": _refcoco("refcoco+", "identify"),
    "invrefcocog": _refcoco("refcocog", "identify"),
    "refvg": lambda root: VisualGenomeRegions(root / "vg", root / "vg/images"),
    "coco_vqa": lambda root: LavisVQA(
        [root / "vqav2/vqa_train.json", root / "vqav2/vqa_val.json"], root / "coco", "coco_vqa"
    ),
    "ok_vqa": lambda root: LavisVQA([root / "okvqa/okvqa_train.json"], root / "coco", "ok_vqa"),
    "aok_vqa": lambda root: AOKVQA(root / "aokvqa/aokvqa_v1p0_train.json", root / "coco/train2017"),
    "gqa": lambda root: GQA(root / "gqa/train_balanced_questions.json", root / "gqa/images"),
    "ocrvqa": lambda root: OCRVQA(root / "ocrvqa/dataset.json", root / "ocrvqa/images"),
    # Stage 3 instruction data.
    "flickr_grounded_caption": _flickr("grounding"),
    "flickr_CaptionToPhrase": _flickr("caption_to_phrase"),
    "flickr_ObjectToPhrase": _flickr("phrase_to_box"),
    "llava_detail": _llava("detail", "detail_23k.json"),
    "llava_reason": _llava("reason", "complex_reasoning_77k.json"),
    "llava_conversation": _llava("conversation", "conversation_58k.json"),
    "multitask_conversation": lambda root: MultitaskConversation(
        root / "multitask_conversation/multitask_conversation.json", root / COCO_TRAIN
    ),
    "unnatural_instruction": lambda root: UnnaturalInstructions(
        root / "unnatural_instructions/filtered_unnatural_instruction.json"
    ),
}


def paper_mixture(
    root: str | Path | None, ratios: Mapping[str, float] | None, seed: int
) -> Mixture:
    """The stage mixture: each named dataset (ratio > 0) read from ``root`` as a ``Stream``."""
    if root is None or ratios is None:
        raise ConfigError(
            "data.source 'paper' needs data.path (the data root) and data.mix (dataset: ratio); "
            "see configs/paper/stage1.yaml"
        )
    unknown = sorted(set(ratios) - set(DATASETS))
    if unknown:
        raise ConfigError(f"unknown datasets {unknown} in data.mix; known: {', '.join(DATASETS)}")
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"data root not found: {root}; set data.path to the folder of datasets")
    datasets = {
        name: Stream(DATASETS[name](root), seed) for name, ratio in ratios.items() if ratio > 0
    }
    return Mixture(datasets, ratios, seed)
