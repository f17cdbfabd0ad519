#!/usr/bin/python3
"""Draws captured terminal output as a terminal with a light or a dark theme would show
it, honouring the ANSI colours the output sets, so a real QR decoder (zbarimg) can read
what a phone's camera would see.

    terminal_png.py light|dark CAPTURE PNG

Each character cell is 6x12 pixels; the half and full blocks (the QR code) are drawn
exactly, any other visible character as a blot of ink in the foreground colour.
"""
import re
import sys

from PIL import Image, ImageDraw

# xterm's palette for SGR 30-37 / 40-47 and the bright 90-97 / 100-107.
PALETTE = [(0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205),
           (0, 205, 205), (229, 229, 229)]
BRIGHT = [(127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255),
          (255, 0, 255), (0, 255, 255), (255, 255, 255)]
THEMES = {  # default foreground, default background
    "light": ((0, 0, 0), (255, 255, 255)),
    "dark": ((229, 229, 229), (0, 0, 0)),
}
CELL_W, CELL_H = 6, 12
SGR = re.compile(r"\x1b\[([0-9;]*)m")
OTHER_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]")


def cells(text, theme):
    """Yields rows of (char, fg, bg) as the terminal would hold them."""
    default_fg, default_bg = THEMES[theme]
    fg, bg = default_fg, default_bg
    for line in text.replace("\r\n", "\n").replace("\r", "").split("\n"):
        row = []
        pos = 0
        line = OTHER_ESCAPE.sub("", line)
        for m in SGR.finditer(line + "\x1b[m"):
            for ch in line[pos:m.start()]:
                row.append((ch, fg, bg))
            pos = m.end()
            if m.start() >= len(line):
                break
            codes = [int(c) if c else 0 for c in m.group(1).split(";")]
            for c in codes:
                if c == 0:
                    fg, bg = default_fg, default_bg
                elif c == 39:
                    fg = default_fg
                elif c == 49:
                    bg = default_bg
                elif 30 <= c <= 37:
                    fg = PALETTE[c - 30]
                elif 40 <= c <= 47:
                    bg = PALETTE[c - 40]
                elif 90 <= c <= 97:
                    fg = BRIGHT[c - 90]
                elif 100 <= c <= 107:
                    bg = BRIGHT[c - 100]
        yield row


def render(text, theme):
    rows = list(cells(text, theme))
    width = max((len(r) for r in rows), default=1) + 4
    height = len(rows) + 4
    image = Image.new("RGB", (width * CELL_W, height * CELL_H), THEMES[theme][1])
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows, start=2):
        for x, (ch, fg, bg) in enumerate(row, start=2):
            left, top = x * CELL_W, y * CELL_H
            right, bottom, middle = left + CELL_W - 1, top + CELL_H - 1, top + CELL_H // 2
            draw.rectangle([left, top, right, bottom], fill=bg)
            if ch == "\u2588":
                draw.rectangle([left, top, right, bottom], fill=fg)
            elif ch == "\u2580":
                draw.rectangle([left, top, right, middle - 1], fill=fg)
            elif ch == "\u2584":
                draw.rectangle([left, middle, right, bottom], fill=fg)
            elif not ch.isspace():
                draw.rectangle([left + 1, top + 3, right - 1, bottom - 3], fill=fg)
    return image


def main():
    theme, capture, png = sys.argv[1:4]
    with open(capture, encoding="utf-8", errors="replace") as f:
        text = f.read()
    render(text, theme).save(png)


if __name__ == "__main__":
    main()
