"""service/placeholders.py: spans the model must not translate survive protect -> decode -> restore."""
from service.placeholders import SLOTS, SYMBOLS, find_spans, protect, protect_pair, restore


def rare(word: str) -> bool:            # stands in for the tokenizer rule: words of 8+ letters are "rare"
    return len(word) >= 8


def test_numbers_urls_emails_are_protected_and_restored():
    text = "Call 555-0123 at 9:30, mail jan.kowalski@example.com or see https://example.org/a?b=1."
    marked, spans = protect(text)
    assert spans == ["555-0123", "9:30", "jan.kowalski@example.com", "https://example.org/a?b=1"]
    assert marked == "Call ⟦0⟧ at ⟦1⟧, mail ⟦2⟧ or see ⟦3⟧."
    # the model may reorder placeholders; each span goes back where its own placeholder landed
    assert restore("Zobacz ⟦3⟧ albo napisz na ⟦2⟧; dzwoń o ⟦1⟧ pod ⟦0⟧.", spans) == \
        "Zobacz https://example.org/a?b=1 albo napisz na jan.kowalski@example.com; dzwoń o 9:30 pod 555-0123."


def test_words_with_digits_are_kept_whole():
    """Codes and units written with their digits are one span: the model never sees their digits."""
    marked, spans = protect("A 4x4 in KV62 covers 2.2 million km2 (3136 mm2) since the 1990s, per Covid-19 data.")
    assert spans == ["4x4", "KV62", "2.2", "km2", "3136", "mm2", "1990s", "Covid-19"]
    assert marked == "A ⟦0⟧ in ⟦1⟧ covers ⟦2⟧ million ⟦3⟧ (⟦4⟧ ⟦5⟧) since the ⟦6⟧, per ⟦7⟧ data."
    assert protect("In 2010. Then 3.5%.")[1] == ["2010", "3.5"]     # a final full stop is not part of it


def test_rare_names_only_inside_the_sentence():
    marked, spans = protect("Pattavee met Squadron Leader Dilokrit in Bangkok.", rare)
    assert spans == ["Squadron", "Dilokrit"]          # the sentence-initial word is never taken for a name
    assert marked.startswith("Pattavee met ⟦0⟧ Leader ⟦1⟧")
    assert protect("He met Dilokrit. Pattavee came later.", rare)[1] == ["Dilokrit"]  # after a full stop: initial
    assert protect("He met Dilokrit.")[1] == []       # without a rarity rule, names are left to the model


def test_nothing_protected_is_lost():
    spans = ["42", "Dilokrit"]
    assert restore("Nie wiem.", spans) == "Nie wiem 42 Dilokrit."        # dropped by the model: added at the end
    assert restore("Czy wiesz?\" ", spans) == "Czy wiesz 42 Dilokrit?\""      # before the final punctuation
    assert restore("Nie wiem", spans) == "Nie wiem 42 Dilokrit"
    assert restore("⟦1⟧ ⟦1⟧ ma ⟦0⟧ lat ⟦7⟧.", spans) == "Dilokrit ma 42 lat."  # repeats and unknown slots removed
    assert restore("Bez liczb.", []) == "Bez liczb."


def test_slots_are_bounded_and_own_symbols_left_alone():
    text = " ".join(str(i) for i in range(SLOTS + 3))
    assert len(find_spans(text)) == SLOTS
    assert protect("a ⟦0⟧ b 12")[1] == []             # text holding our symbols is not touched


def test_training_pairs_marked_only_where_the_span_is_copied():
    assert protect_pair("I have 3 cats and 2.5 dogs.", "Mam 3 koty i 2,5 psa.") == \
        ("I have ⟦0⟧ cats and 2.5 dogs.", "Mam ⟦0⟧ koty i 2,5 psa.")
    assert protect_pair("Ask Dilokrit about 7 ships.", "Zapytaj Dilokrita o 7 statków.", rare) == \
        ("Ask Dilokrit about ⟦0⟧ ships.", "Zapytaj Dilokrita o ⟦0⟧ statków.")   # inflected name: stays text
    assert all(s in SYMBOLS for s in ["⟦0⟧", "⟦9⟧"])
