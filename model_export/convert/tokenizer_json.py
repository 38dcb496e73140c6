"""Reading what ``keras.preprocessing.text.Tokenizer.to_json()`` wrote, without TensorFlow.

Two spellings are common and both are read: the JSON text itself (``f.write(tok.to_json())``)
and that text JSON-encoded once more (``json.dump(tok.to_json(), f)``, as many tutorials do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_export.convert.errors import ConvertError


@dataclass(frozen=True)
class KerasTokenizerFile:
    path: Path
    json_text: str  # what keras' tokenizer_from_json takes, for the reference pipeline
    settings: dict[str, Any]  # filters, lower, split, char_level, oov_token, num_words
    word_index: dict[str, int]

    def words_by_id(self) -> list[str]:
        """Words the tokenizer can give an id, most frequent (lowest id) first, OOV token excluded."""
        limit = self.settings["num_words"] or None
        oov = self.settings["oov_token"]
        kept = [(i, w) for w, i in self.word_index.items() if w != oov and (limit is None or i < limit)]
        return [w for _, w in sorted(kept)]

    def max_id(self) -> int:
        """The largest id texts_to_sequences can give (0 if none)."""
        limit = self.settings["num_words"] or None
        oov_id = self.word_index.get(self.settings["oov_token"]) if self.settings["oov_token"] is not None else None
        ids = [i for i in self.word_index.values() if limit is None or i < limit]
        return max([*ids, oov_id or 0], default=0)


def _fail(path: Path, why: str) -> ConvertError:
    return ConvertError(f"--tokenizer {path} is not the JSON of a Keras Tokenizer (Tokenizer.to_json()): {why}")


def _decoded(value: Any, path: Path, field: str) -> Any:
    if isinstance(value, str):  # to_json() stores its dictionaries as JSON text
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise _fail(path, f"config.{field} is not JSON ({exc.msg})") from exc
    return value


def read_keras_tokenizer(path: Path) -> KerasTokenizerFile:
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = json.loads(text)
        if isinstance(data, str):
            text, data = data, json.loads(data)
    except UnicodeDecodeError as exc:
        raise _fail(path, f"not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not JSON ({exc.msg} at line {exc.lineno})") from exc
    except OSError as exc:
        raise ConvertError(f"--tokenizer {path}: cannot read it ({exc.strerror or exc})") from exc
    if not isinstance(data, dict) or data.get("class_name") != "Tokenizer" or not isinstance(data.get("config"), dict):
        raise _fail(path, 'no {"class_name": "Tokenizer", "config": {...}} object')
    config = data["config"]
    if "word_index" not in config:
        raise _fail(path, "config has no word_index")
    word_index = _decoded(config["word_index"], path, "word_index")
    if not isinstance(word_index, dict) or not word_index:
        raise _fail(path, "config.word_index is not a non-empty object")
    if any(not isinstance(i, int) or isinstance(i, bool) or i < 1 for i in word_index.values()):
        raise _fail(path, "config.word_index has an id that is not a positive integer")
    settings = {
        "filters": config.get("filters", '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'),
        "lower": config.get("lower", True),
        "split": config.get("split", " "),
        "char_level": config.get("char_level", False),
        "oov_token": config.get("oov_token"),
        "num_words": config.get("num_words"),
    }
    for key, kind in (("filters", str), ("lower", bool), ("split", str), ("char_level", bool)):
        if not isinstance(settings[key], kind):
            raise _fail(path, f"config.{key} is not a {kind.__name__}")
    if settings["oov_token"] is not None and settings["oov_token"] not in word_index:
        raise _fail(path, f"oov_token {settings['oov_token']!r} has no id in word_index")
    num_words = settings["num_words"]
    if num_words is not None and (not isinstance(num_words, int) or isinstance(num_words, bool) or num_words < 0):
        raise _fail(path, f"config.num_words {num_words!r} is not a non-negative integer")
    if not settings["char_level"] and not settings["split"]:
        raise _fail(path, "config.split is empty")
    return KerasTokenizerFile(path, text, settings, word_index)
