"""Numbers and strings that define MiniGPT-v2's interface (spec §1, §3).

They are fixed by the released checkpoint and its training data, so they live here once and are
imported by the prompt, processor, model and evaluation code alike.
"""

from __future__ import annotations

# Labels with this value are ignored by the cross-entropy loss (PyTorch / transformers convention).
IGNORE_INDEX = -100

# Input-id value that marks a position to be filled with an image feature. It is negative so it can
# never collide with a vocabulary id, and the model replaces it before the embedding lookup.
IMAGE_TOKEN_ID = -200

# The literal placeholder in prompt text where the image features go, and its wrapping tags.
IMAGE_PLACEHOLDER = "<ImageHere>"
IMAGE_OPEN = "<Img>"
IMAGE_CLOSE = "</Img>"

# MiniGPT-v2's input resolution: the released EVA ViT-g (pretrained at 224 px) runs at 448 px, its
# position table resampled (spec §1.2); the default for loading the released files.
RELEASED_IMAGE_SIZE = 448

# Four consecutive ViT patch tokens are concatenated into one language-model token.
TOKENS_MERGED = 4

# Box coordinates are integers on a 0..BOX_BINS grid relative to the original image size.
BOX_BINS = 100

# Box-grammar literals: phrase tags and the separator between several boxes of one phrase.
PHRASE_OPEN = "<p>"
PHRASE_CLOSE = "</p>"
BOX_DELIMITER = "<delim>"

# LLaMA SentencePiece specials; the literal strings inside text map to these ids.
BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
# MiniGPT-v2 pads with the piece "$$" (its id is looked up in the vocabulary at run time).
PAD = "$$"

# CLIP normalisation used by MiniGPT-v2's image processor (spec §5.3).
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)

# The "model_type" of our config.json: what transformers' AutoConfig dispatches on.
MODEL_TYPE = "minigptv2"
