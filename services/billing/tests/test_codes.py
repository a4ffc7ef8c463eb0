"""Serial codes: shape, forgiving input, the check symbol, uniqueness and entropy."""
import math
import re

import pytest

from services.billing import codes

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def make(body: str) -> str:
    """A well-formed code with the given 19 random symbols."""
    assert len(body) == 19
    return body + codes.check_symbol(body)


# a few fixed codes, chosen to contain 0, 1, Z and repeated symbols, plus random ones
FIXED = [make("0123456789ABCDEFGHJ"), make("KMNPQRSTVWXYZ0Z1Z10"), make("ZZZZZZZZZZZZZZZZZZZ"),
         make("0000000000000000000"), make("7KQ2MXW4TB9HD3RF6JN")]
SAMPLES = FIXED + [codes.generate() for _ in range(5)]


# --- shape -----------------------------------------------------------------------------------

def test_the_alphabet_is_crockford_base32():
    assert codes.ALPHABET == CROCKFORD
    assert len(set(codes.ALPHABET)) == 32
    assert not set("ILOU") & set(codes.ALPHABET)


def test_a_generated_code_is_20_crockford_symbols_and_well_formed():
    for _ in range(200):
        code = codes.generate()
        assert len(code) == 20
        assert set(code) <= set(CROCKFORD)
        assert codes.normalise(code) == code
        assert code[-1] == codes.check_symbol(code[:-1])


def test_display_shows_four_groups_of_five_and_normalises_back():
    for code in SAMPLES:
        shown = codes.display(code)
        assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}", shown), shown
        assert shown.replace("-", "") == code
        assert codes.normalise(shown) == code


# --- forgiving input -------------------------------------------------------------------------

def test_lower_case_spaces_and_hyphens_are_accepted():
    for code in SAMPLES:
        shown = codes.display(code)
        assert codes.normalise(code.lower()) == code
        assert codes.normalise(shown.lower()) == code
        assert codes.normalise(shown.replace("-", " ")) == code
        assert codes.normalise(f"  {shown}  ") == code
        assert codes.normalise(" ".join(code)) == code
        assert codes.normalise("-".join(code[i:i + 4] for i in range(0, 20, 4))) == code


def test_o_is_read_as_zero_and_i_or_l_as_one_in_either_case():
    code = FIXED[0]  # 0123456789ABCDEFGHJ + check: has a 0 and a 1
    assert code.startswith("01")
    for zero in "oO":
        for one in "iIlL":
            typed = zero + one + code[2:]
            assert codes.normalise(typed) == code, typed
    code = FIXED[3]  # all zeros
    assert codes.normalise(code.replace("0", "O")) == code
    assert codes.normalise(code.replace("0", "o").lower()) == code


@pytest.mark.parametrize("text", [
    "", "-", "     ",
    FIXED[0][:-1],             # 19 symbols
    FIXED[0][:-2],
    FIXED[0] + "0",            # 21 symbols
    FIXED[0] + FIXED[1],       # 40 symbols
])
def test_wrong_length_is_rejected(text):
    assert codes.normalise(text) is None


@pytest.mark.parametrize("foreign", ["U", "u", "*", "#", "é", "Ø", "_", ".", "+", "\t", "０"])
def test_a_foreign_symbol_anywhere_is_rejected(foreign):
    code = FIXED[4]
    for position in (0, 7, 19):
        typed = code[:position] + foreign + code[position + 1:]
        assert codes.normalise(typed) is None, typed


@pytest.mark.parametrize("value", [None, 12345, b"0123456789ABCDEFGHJK", ["A"] * 20])
def test_non_text_is_rejected(value):
    assert codes.normalise(value) is None


def test_an_overlong_input_is_rejected_before_any_work():
    padded = " " * 60 + FIXED[0]
    assert len(padded) > 64
    assert codes.normalise(padded) is None


# --- the check symbol ------------------------------------------------------------------------

@pytest.mark.parametrize("code", SAMPLES)
def test_every_single_symbol_substitution_is_caught(code):
    missed = []
    for position in range(len(code)):
        for symbol in CROCKFORD:
            if symbol == code[position]:
                continue
            typo = code[:position] + symbol + code[position + 1:]
            if codes.normalise(typo) is not None:
                missed.append(typo)
    assert missed == []


@pytest.mark.parametrize("code", SAMPLES)
def test_every_adjacent_swap_is_caught_except_zero_and_z(code):
    missed, blind = [], []
    for position in range(len(code) - 1):
        a, b = code[position], code[position + 1]
        if a == b:
            continue
        swapped = code[:position] + b + a + code[position + 2:]
        if {a, b} == {"0", "Z"}:
            blind.append(swapped)
        elif codes.normalise(swapped) is not None:
            missed.append((position, a, b))
    assert missed == []
    for swapped in blind:  # Luhn mod 32's one blind pair: documented, and still well-formed
        assert codes.normalise(swapped) == swapped


def test_a_swap_of_zero_and_z_is_the_documented_blind_spot():
    code = FIXED[1]
    position = code.index("0Z")
    swapped = code[:position] + "Z0" + code[position + 2:]
    assert swapped != code
    assert codes.normalise(swapped) == swapped


def test_every_pair_of_symbols_swapped_in_every_position_is_caught():
    """Exhaustive over the pair of symbols, not just the pairs a few codes happen to hold."""
    base = list(FIXED[4][:19])
    missed = []
    for position in (0, 9, 17):
        for a in CROCKFORD:
            for b in CROCKFORD:
                if a == b or {a, b} == {"0", "Z"}:
                    continue
                body = base[:]
                body[position], body[position + 1] = a, b
                good = make("".join(body))
                swapped = good[:position] + b + a + good[position + 2:]
                if codes.normalise(swapped) is not None:
                    missed.append((position, a, b))
    for a in CROCKFORD:  # the last random symbol swapped with the check symbol
        good = make("".join(base[:18]) + a)
        check = good[19]
        if a == check or {a, check} == {"0", "Z"}:
            continue
        if codes.normalise(good[:18] + check + a) is not None:
            missed.append((18, a, check))
    assert missed == []


def test_check_symbol_is_one_alphabet_symbol_and_depends_on_every_position():
    body = "0123456789ABCDEFGHJ"
    check = codes.check_symbol(body)
    assert len(check) == 1 and check in CROCKFORD
    for position in range(19):
        changed = body[:position] + ("Z" if body[position] != "Z" else "Y") + \
            body[position + 1:]
        assert codes.check_symbol(changed) != check, position


# --- uniqueness and entropy ------------------------------------------------------------------

def test_ten_thousand_draws_are_all_different():
    drawn = [codes.generate() for _ in range(10_000)]
    assert len(set(drawn)) == len(drawn)
    assert len({c[:-1] for c in drawn}) == len(drawn)


def test_every_symbol_appears_in_every_random_position():
    """Each of the 19 positions draws from all 32 symbols (not from a subset)."""
    drawn = [codes.generate() for _ in range(3_000)]
    for position in range(codes.RANDOM_SYMBOLS):
        seen = {c[position] for c in drawn}
        assert seen == set(CROCKFORD), position


def test_entropy_is_at_least_80_bits():
    assert codes.RANDOM_SYMBOLS == 19
    assert codes.LENGTH == 20
    bits = codes.RANDOM_SYMBOLS * math.log2(len(codes.ALPHABET))
    assert bits == 95
    assert bits >= 80
