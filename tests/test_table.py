"""Text tables: natural width when unbounded, wrapped at spaces within a width, aligned cells."""

from pdroof.output.table import format_table

HEADERS = ["#", "prefill (hw×TP W/A)", "TPOT (ms)"]
ROWS = [["1", "b200×1 fp4/fp4", "22"], ["10", "h100-sxm×8 fp8/fp8", "24.7"]]


def _lines(text):
    return text.rstrip("\n").split("\n")


def test_natural_width_and_alignment():
    lines = _lines(format_table(HEADERS, ROWS, [True, False, True]))
    assert len({len(line) for line in lines}) == 1  # every line the same width
    assert lines[0].startswith("┏") and lines[-1].startswith("└")
    body = [line for line in lines if line.startswith("│")]
    assert body[0].split("│")[1] == "  1 " and body[1].split("│")[1] == " 10 "  # right-aligned
    assert "b200×1 fp4/fp4    " in body[0]  # left-aligned text


def test_width_wraps_at_spaces_not_letters():
    text = format_table(HEADERS, ROWS, [True, False, True], width=34)
    lines = _lines(text)
    assert max(len(line) for line in lines) <= 34
    cells = " ".join(line.split("│")[2].strip() for line in lines if line.startswith("│"))
    for word in ("b200×1", "fp4/fp4", "h100-sxm×8", "fp8/fp8"):
        assert word in cells.split()


def test_title_and_caption_are_centred_and_wrapped():
    text = format_table(HEADERS, ROWS, [True, False, True], title="a title", caption="word " * 30)
    lines = _lines(text)
    width = len(lines[1])
    assert lines[0].strip() == "a title" and lines[0].index("a") == (width - len("a title")) // 2
    assert all(len(line) <= width for line in lines)
    assert lines[-1].strip().startswith("word")


def test_bold_header_keeps_columns_aligned():
    plain = _lines(format_table(HEADERS, ROWS, [True, False, True]))
    bold = _lines(format_table(HEADERS, ROWS, [True, False, True], bold=True))
    assert "\x1b[1m" in bold[1]
    assert bold[1].replace("\x1b[1m", "").replace("\x1b[0m", "") == plain[1]
    assert bold[2:] == plain[2:]


def test_multiline_and_empty_cells():
    text = format_table(["a", "b"], [["x\ny", ""]], [False, False])
    body = [line for line in _lines(text) if line.startswith("│")]
    assert len(body) == 2 and "x" in body[0] and "y" in body[1]
