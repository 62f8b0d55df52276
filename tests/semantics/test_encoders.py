"""Class embeddings from text encoders: MiniLM with its real weights, CLIP towers randomly initialised."""

import hashlib
import json
import logging
import socket
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from goz import semantics
from goz.cli import main
from goz.errors import GozError
from goz.semantics.encoders import (
    IMAGENET_TEMPLATES,
    TextEncoder,
    check_encoder_spec,
    check_template,
    create_encoder,
    curated_class_names,
    embed_classes,
    load_clip,
    read_templates,
)
from goz.store import write_store
from goz.wordnet import Hierarchy, Synset

CHIHUAHUA, JAPANESE_SPANIEL, SPORTS_CAR = "n02085620", "n02085782", "n04285008"
TINY_CLIP = "goz-test-tiny-clip"
TINY_CONFIG = {"embed_dim": 32,
               "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
HIERARCHY = Hierarchy([
    Synset("n00000001", ("thing",), gloss="anything at all"),
    Synset("n00000002", ("dog", "domestic_dog"), gloss="a member of the genus Canis", hypernyms=("n00000001",)),
    Synset("n00000003", ("car",), gloss="a motor vehicle with four wheels", hypernyms=("n00000001",)),
    Synset("n00000004", ("cat",), gloss="", hypernyms=("n00000001",)),
])


def cosine(table, a, b):
    return float(table.vector(a) @ table.vector(b))


@pytest.fixture(scope="module")
def minilm():
    return create_encoder("minilm")


@pytest.mark.parametrize("text", ["lemmas", "gloss", "both"])
def test_minilm_puts_wordnet_siblings_closer_than_unrelated_classes(minilm, text):
    table = embed_classes(minilm, [CHIHUAHUA, JAPANESE_SPANIEL, SPORTS_CAR], text=text, progress=False)
    assert table.dim == 384 and table.attrs["encoder"] == "sentence-transformers:all-MiniLM-L6-v2"
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)
    assert cosine(table, CHIHUAHUA, JAPANESE_SPANIEL) > cosine(table, CHIHUAHUA, SPORTS_CAR) + 0.1


def test_goz_embed_encoder_minilm_writes_a_table_recording_the_encoder(tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text(f"{CHIHUAHUA}\n{SPORTS_CAR}\n")
    out = tmp_path / "minilm.h5"
    assert main(["embed", "--encoder", "minilm", "--text", "both", "--classes", str(classes), "--out", str(out),
                 "--quiet", "--batch-size", "1"]) == 0
    assert "2 classes, dimension 384" in capsys.readouterr().out
    table = semantics.load(out)
    assert table.wnids == [CHIHUAHUA, SPORTS_CAR]
    assert table.attrs["encoder"] == "sentence-transformers:all-MiniLM-L6-v2" and table.attrs["text"] == "both"
    assert table.attrs["templates"] == ""
    # A sentence encoder embeds the text as it is: prompt templates are refused, as is mixing with --vectors.
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of a {}.\n")
    assert main(["embed", "--encoder", "minilm", "--prompts", str(templates), "--classes", str(classes),
                 "--out", str(out)]) == 2
    assert "prompt templates are for CLIP" in capsys.readouterr().err
    assert main(["embed", "--encoder", "minilm", "--vectors", "x.txt", "--classes", str(classes),
                 "--out", str(out)]) == 2
    assert "exclusive" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised open_clip model of a tiny architecture, registered for this test session."""
    import open_clip
    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    model, tokenizer, _ = load_clip(TINY_CLIP, None)
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return model, tokenizer, checkpoint


def unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_clip_text_tower_averages_unit_prompt_embeddings(tiny_clip, tmp_path):
    model, tokenizer, checkpoint = tiny_clip
    templates = ("a photo of a {}.", "a drawing of the {}.")
    table = embed_classes(f"clip:{TINY_CLIP}:{checkpoint}", ["n00000002", "n00000003"], HIERARCHY,
                          templates=templates, batch_size=3, progress=False)
    assert table.vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        prompts = [t.format(name) for name in ("dog", "domestic dog") for t in templates]
        expected = unit(unit(model.encode_text(tokenizer(prompts)).numpy()).mean(0))
    np.testing.assert_allclose(table.vector("n00000002"), expected, atol=1e-5)
    assert table.attrs["templates"] == "\n".join(templates) and table.attrs["n_templates"] == 2
    digest = __import__("hashlib").sha256(checkpoint.read_bytes()).hexdigest()
    assert table.attrs["encoder"] == f"clip:{TINY_CLIP}:sha256={digest}"
    # The default prompts are the 80 ImageNet templates of the CLIP paper; the gloss modes use the gloss.
    default = embed_classes(f"clip:{TINY_CLIP}:{checkpoint}", ["n00000003"], HIERARCHY, text="both", progress=False)
    assert default.attrs["n_templates"] == len(IMAGENET_TEMPLATES) == 80
    with torch.no_grad():
        prompts = [t.format("car, a motor vehicle with four wheels") for t in IMAGENET_TEMPLATES]
        expected = unit(unit(model.encode_text(tokenizer(prompts)).numpy()).mean(0))
    np.testing.assert_allclose(default.vector("n00000003"), expected, atol=1e-5)
    with pytest.raises(GozError, match="no WordNet gloss"):
        embed_classes(f"clip:{TINY_CLIP}:{checkpoint}", ["n00000004"], HIERARCHY, text="gloss", progress=False)


def test_prompt_template_files_and_bad_specs(tmp_path, tiny_clip):
    path = tmp_path / "prompts.txt"
    path.write_text("# mine\na photo of a {}.\n\nitap of a {}.\n")
    assert read_templates(path) == ("a photo of a {}.", "itap of a {}.")
    path.write_text("a photo of a thing.\n")
    with pytest.raises(GozError, match=r"prompts.txt:1: template 'a photo of a thing.' has 0 \{\} fields"):
        read_templates(path)
    with pytest.raises(GozError, match="not an open_clip architecture"):
        create_encoder("clip:No-Such-Arch:openai")
    with pytest.raises(GozError, match="/nowhere/ckpt.pt: no such CLIP checkpoint file"):
        create_encoder(f"clip:{TINY_CLIP}:/nowhere/ckpt.pt")
    with pytest.raises(GozError, match="no prompt template given"):
        embed_classes(f"clip:{TINY_CLIP}:{tiny_clip[2]}", ["n00000002"], HIERARCHY, templates=(), progress=False)
    with pytest.raises(GozError, match="--text 'words'"):
        embed_classes("minilm", ["n00000002"], HIERARCHY, text="words")


@pytest.mark.parametrize("template, problem", [
    ("a photo of a {}. {x}", "has the field {x}"),
    ("a photo of a {}. {", "unbalanced braces"),
    ("a photo of a }{}.", "unbalanced braces"),
    ("{} and {}", "has 2 {} fields"),
    ("a photo of a {0}.", "has the field {0}"),
    ("a photo of a {!r}.", "has the field {!r}"),
    ("a photo of a {:>9}.", "has the field {:>9}"),
    ("a photo of a {.__class__}.", "has the field {.__class__}"),
])
def test_malformed_prompt_templates_are_refused_naming_the_template(tmp_path, tiny_clip, capsys, template, problem):
    path = tmp_path / "prompts.txt"
    path.write_text(f"a photo of a {{}}.\n{template}\n")
    with pytest.raises(GozError) as error:
        read_templates(path)
    assert str(error.value).startswith(f"{path}:2: template {template!r} ") and problem in str(error.value)
    spec = f"clip:{TINY_CLIP}:{tiny_clip[2]}"
    with pytest.raises(GozError, match="prompt template 2: template") as error:
        embed_classes(spec, ["n00000002"], HIERARCHY, templates=("a {}.", template), progress=False)
    assert problem in str(error.value)
    classes = tmp_path / "classes.txt"
    classes.write_text(f"{CHIHUAHUA}\n")
    assert main(["embed", "--encoder", spec, "--prompts", str(path), "--classes", str(classes),
                 "--out", str(tmp_path / "t.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: template" in err and problem in err and "Traceback" not in err
    assert not (tmp_path / "t.h5").exists()


def test_literal_braces_in_a_template_are_kept():
    assert check_template("a {{toy}} {}.").format("dog") == "a {toy} dog."
    with pytest.raises(GozError, match="must be text"):
        check_template(3)


def test_clip_round_trip_through_the_store_and_the_table(tiny_clip, tmp_path, capsys):
    """Image embeddings of the tiny model (the store, as `goz extract --backbone clip:` writes it) and its
    prompt-ensembled class embeddings (the table): `goz bench --models clip` runs; another CLIP model's table
    is refused."""
    model, _, checkpoint = tiny_clip
    classes = ["n02085620", "n02085782", "n04285008", "n02958343"]  # seen: the first two
    spec_table = tmp_path / "clip.h5"
    split_file = tmp_path / "classes.txt"
    split_file.write_text("\n".join(classes) + "\n")
    assert main(["embed", "--encoder", f"clip:{TINY_CLIP}:{checkpoint}", "--classes", str(split_file),
                 "--out", str(spec_table), "--quiet"]) == 0
    table = semantics.load(spec_table)
    spec = table.attrs["encoder"]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        def images(n):
            return model.encode_image(torch.rand(n, 3, 32, 32, generator=generator)).numpy()
        train = {w: (images(6), np.arange(6)) for w in classes[:2]}
        test = {w: (images(4), np.arange(4)) for w in classes}
    write_store(tmp_path / "train.h5", train, {"backbone": spec})
    write_store(tmp_path / "test.h5", test, {"backbone": spec})
    (tmp_path / "seen.txt").write_text("\n".join(classes[:2]) + "\n")
    (tmp_path / "unseen.txt").write_text("\n".join(classes[2:]) + "\n")
    bench = ["bench", "--models", "clip", "--train", str(tmp_path / "train.h5"), "--test", str(tmp_path / "test.h5"),
             "--seen", str(tmp_path / "seen.txt"), "--unseen", str(tmp_path / "unseen.txt"), "--quiet"]
    assert main(bench + ["--semantics", str(spec_table), "--out", str(tmp_path / "results")]) == 0
    result = json.loads((tmp_path / "results" / "clip_gzsl.json").read_text())
    assert result["classes"]["n_candidates"] == 4 and 0 <= result["metrics"]["top1"] <= 1
    # The clip model's zsl top-1 is the cosine between stored image and class embeddings, by hand.
    with np.load(tmp_path / "results" / "clip_zsl.predictions.npz") as predictions:
        unseen_images = np.concatenate([test[w][0] for w in classes[2:]])
        by_hand = (unit(unseen_images) @ np.stack([table.vector(w) for w in classes[2:]]).T).argmax(1)
        np.testing.assert_array_equal(predictions["topk"][:, 0], by_hand)
    with h5py.File(spec_table, "a") as h5:
        h5.attrs["encoder"] = "clip:ViT-B-32:openai"
    capsys.readouterr()
    assert main(bench + ["--semantics", str(spec_table), "--out", str(tmp_path / "refused")]) == 2
    error = capsys.readouterr().err
    assert f"image embeddings of {spec}" in error and "clip:ViT-B-32:openai" in error and "Traceback" not in error
    assert not (tmp_path / "refused" / "clip_zsl.json").exists()


def _fake_hub_cache(cache, repo, filename):
    """A file as huggingface_hub caches it: models--ORG--NAME/refs/main -> snapshots/<commit>/FILE."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("0" * 40) / filename).write_text("{}")


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("SENTENCE_TRANSFORMERS_HOME", raising=False)
    return tmp_path / "hub"


def test_an_encoder_neither_a_folder_nor_cached_fails_fast_offline(tmp_path, monkeypatch, capsys, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # the check must come before this slow import
    classes = tmp_path / "classes.txt"
    classes.write_text(f"{CHIHUAHUA}\n")
    started = time.monotonic()
    assert main(["embed", "--encoder", "nosuch-model", "--classes", str(classes), "--out", str(tmp_path / "t.h5"),
                 "--quiet"]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert ("encoder 'nosuch-model': not a folder and not in the local Hugging Face cache, and HF_HUB_OFFLINE is "
            "set; pass a model folder instead (--encoder sentence-transformers:/path/to/model") in err
    assert "Traceback" not in err and err.count("\n") == 1
    for name, message in ((str(tmp_path / "nowhere"), "no such model folder"), (str(classes), "is a file")):
        with pytest.raises(GozError, match=message):
            create_encoder(name)
    # A name in the cache (here under SENTENCE_TRANSFORMERS_HOME, as sentence-transformers/NAME) passes the check.
    _fake_hub_cache(tmp_path / "st", "sentence-transformers/cached-model", "modules.json")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path / "st"))
    assert check_encoder_spec("cached-model") == ("sentence-transformers", "cached-model")


def test_an_unreachable_hub_is_found_without_waiting(monkeypatch, empty_hub_cache):
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                     "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(GozError, match="not in the local Hugging Face cache, and 127.0.0.1 cannot be reached"):
        check_encoder_spec("sentence-transformers:nosuch-model")
    assert time.monotonic() - started < 5
    # The same for published CLIP weights (a tag), unless they are in the cache (timed: not open_clip's import).
    with pytest.raises(GozError, match="clip:ViT-B-32:openai: the weights are not in the local cache and 127.0.0.1"):
        check_encoder_spec("clip:ViT-B-32:openai")
    _fake_hub_cache(empty_hub_cache, "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    assert check_encoder_spec("clip:ViT-B-32:openai") == ("clip", "ViT-B-32:openai")


class RecordingEncoder(TextEncoder):
    """A prompt encoder whose vector of a text is a function of the text alone; it records what it saw."""

    uses_prompts = True

    def __init__(self):
        super().__init__("recording", batch_size=4)
        self.texts = []

    @property
    def dim(self):
        return 8

    def encode_batch(self, texts):
        self.texts += texts
        return np.array([np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], np.uint8) for t in texts],
                        np.float32) - 127.5


BIRD_CRANE, MACHINE_CRANE, TENCH = "n02012849", "n03126707", "n01440764"


def test_curated_class_names_are_clips_one_name_per_ilsvrc_class():
    from goz.catalog import imagenet_testset
    names = curated_class_names()
    assert list(names) == sorted(imagenet_testset("train"))  # ILSVRC-2012 order
    assert (names[TENCH], names[BIRD_CRANE], names[MACHINE_CRANE]) == ("tench", "crane bird", "construction crane")
    assert names["n15075141"] == "toilet paper" and len(set(names.values())) == 998  # missile, sunglasses twice


def test_curated_names_give_one_text_per_class_and_part_the_two_cranes(caplog):
    templates = ("a photo of a {}.", "itap of a {}.")
    classes = [TENCH, BIRD_CRANE, MACHINE_CRANE]
    lemmas_encoder, curated_encoder = RecordingEncoder(), RecordingEncoder()
    with caplog.at_level(logging.WARNING, logger="goz"):
        lemmas = embed_classes(lemmas_encoder, classes, templates=templates, progress=False)
    assert sorted(lemmas_encoder.texts) == sorted(t.format(n) for n in ("tench", "Tinca tinca", "crane", "crane")
                                                  for t in templates)
    assert lemmas.duplicate_vectors() == [[BIRD_CRANE, MACHINE_CRANE]] and lemmas.attrs["class_names"] == "lemmas"
    assert f"{BIRD_CRANE} = {MACHINE_CRANE}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="goz"):
        curated = embed_classes(curated_encoder, classes, templates=templates, class_names="curated", progress=False)
    assert sorted(curated_encoder.texts) == sorted(t.format(n) for n in ("tench", "crane bird", "construction crane")
                                                   for t in templates)
    assert curated.duplicate_vectors() == [] and "share one class vector" not in caplog.text
    assert (curated.attrs["class_names"], curated.attrs["curated_classes"]) == ("curated", 3)
    # Classes outside ILSVRC-2012 keep their lemmas, said in a warning; the gloss alone names nothing.
    encoder = RecordingEncoder()
    with caplog.at_level(logging.WARNING, logger="goz"):
        embed_classes(encoder, [TENCH, "n02084071"], templates=("{}",), class_names="curated", progress=False)
    assert "1 of 2 classes are not ILSVRC-2012 classes" in caplog.text and "n02084071" in caplog.text
    assert sorted(encoder.texts) == ["Canis familiaris", "dog", "domestic dog", "tench"]
    with pytest.raises(GozError, match="--text gloss embeds no name"):
        embed_classes(encoder, [TENCH], text="gloss", class_names="curated", progress=False)
    with pytest.raises(GozError, match="--class-names 'wordnet'"):
        embed_classes(encoder, [TENCH], class_names="wordnet", progress=False)


def test_goz_embed_class_names_curated(tiny_clip, tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text(f"{BIRD_CRANE}\n{MACHINE_CRANE}\n")
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of a {}.\n")
    out = tmp_path / "curated.h5"
    assert main(["embed", "--encoder", f"clip:{TINY_CLIP}:{tiny_clip[2]}", "--class-names", "curated", "--prompts",
                 str(templates), "--classes", str(classes), "--out", str(out), "--quiet"]) == 0
    assert "class names: curated, 1 prompt templates" in capsys.readouterr().out
    table = semantics.load(out)
    model, tokenizer, _ = tiny_clip
    with torch.no_grad():
        expected = unit(model.encode_text(tokenizer(["a photo of a crane bird."])).numpy()[0])
    np.testing.assert_allclose(table.vector(BIRD_CRANE), expected, atol=1e-5)
    assert table.attrs["class_names"] == "curated" and table.duplicate_vectors() == []
