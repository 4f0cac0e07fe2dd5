"""export/corpus.py: filters, dictionary entries, and evaluation sets kept out of training."""
from export.corpus import SOURCES, build, dictionary_pair, noise, normalise


def test_noise_filters():
    assert noise("Hello.", "hello") == "untranslated"
    assert noise("A fairly ordinary sentence here.", "Tak.") == "length ratio"
    assert noise("Press %s to continue.", "Naciśnij %s, aby kontynuować.") == "markup"
    assert noise("I don't understand.", "Nie rozumiem.") is None


def test_dictionary_entries_become_word_pairs():
    assert dictionary_pair(["depend", "zależeć (on - od) (upon - od)", "V"]) == ("depend", "zależeć")
    assert dictionary_pair(["anemone", "anemon, zawilec", "N"]) == ("anemone", "anemon")
    assert dictionary_pair(["a b c d", "x", "N"]) is None


def test_build_keeps_evaluation_and_test_sentences_out(tmp_path):
    data = tmp_path / "data"
    (data / "extra").mkdir(parents=True)
    (data / "dev").mkdir()
    dev_en, dev_pl = "The pilot was identified as the leader.", "Pilota zidentyfikowano jako dowódcę."
    (data / "dev" / "flores200-dev.eng-pol.tsv").write_text(f"{dev_en}\t{dev_pl}\n")
    (data / "dev" / "ud-pud.eng-pol.tsv").write_text("Some news.\tJakieś wiadomości.\n")
    lines = [f"Sentence number {i} is here.\tZdanie numer {i} jest tutaj." for i in range(40)]
    lines += [f"the pilot was identified as the LEADER\tcoś innego", "Keep me out.\tTrzymaj mnie z dala."]
    (data / "eng-pol.tsv").write_text("\n".join(lines) + "\n")
    for name in SOURCES:
        if name.startswith("extra/"):
            (data / name).write_text("Close the door, please.\tZamknij drzwi, proszę.\tN\n")
    test = tmp_path / "test.tsv"
    test.write_text("Keep me out.\tTrzymaj mnie z dala.\n")
    train, val, stats = build(data, test, n_val=4, seed=1)
    everything = train + val
    assert not any(normalise(en) in {normalise(dev_en), "keep me out"} for en, _ in everything)
    assert stats["eng-pol.tsv"]["dropped"] == {"evaluation set": 1, "Tatoeba test split": 1}
    assert sum(en == "Close the door, please." for en, _ in everything) == 1     # deduplicated across sources
    assert stats["extra/cdda.tsv"]["credit"] and stats["extra/cdda.tsv"]["licence"]
    # weighting: a repeated source's training pairs appear N times, validation pairs never
    train3, val3, stats3 = build(data, test, n_val=4, seed=1, repeat={"eng-pol.tsv": 3})
    assert val3 == val and stats3["eng-pol.tsv"]["repeat"] == 3
    tatoeba = [p for p in train if p[0].startswith("Sentence number")]
    assert sorted(p for p in train3 if p[0].startswith("Sentence number")) == sorted(tatoeba * 3)
    assert sum(en == "Close the door, please." for en, _ in train3) == 1
