"""Derive Hugging Face CLIP tokenizer files from OpenAI's BPE vocabulary.

Model hubs are out of reach here, but OpenAI's `bpe_simple_vocab_16e6.txt.gz` ships inside PyPI
packages (for example open-clip-torch). CLIP's SimpleTokenizer builds its 49,408-entry vocabulary from
that file in a fixed order; we repeat that order so the ids match the released CLIP tokenizer, and
write `vocab.json` + `merges.txt` that `CLIPTokenizer.from_pretrained(folder)` reads.

The derived files ship in `daam_store/models/clip_tokenizer/`; this module is how they were made:
`python -m daam_store.models.clip_bpe path/to/bpe_simple_vocab_16e6.txt.gz out_dir`.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # CLIP keeps this many merges of the file
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes used by GPT-2/CLIP byte-level BPE, in id order."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def derive_tokenizer_files(bpe_gz: Path, out_dir: Path) -> None:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    alphabet = byte_alphabet()
    tokens = alphabet + [t + "</w>" for t in alphabet] + ["".join(m) for m in merges] + [BOS, EOS]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    config = {
        "model_max_length": 77,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")


if __name__ == "__main__":
    derive_tokenizer_files(Path(sys.argv[1]), Path(sys.argv[2]))
