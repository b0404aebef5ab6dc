"""The signs beside the live states are drawn with a glyph, not as an empty box.

A sign no installed font has (U+23FB, the power symbol, is in neither DejaVu nor Liberation)
is drawn as the "missing glyph" box, and the state then reads as a box and a word. Each sign
is drawn on a canvas in the page's font and compared with a code point no font has.
"""

from lifecycle.delivery import live

DRAWN_AS_MISSING = """(signs) => {
  const font = getComputedStyle(document.body).font;
  const draw = (text) => {
    const canvas = document.createElement('canvas');
    canvas.width = 48;
    canvas.height = 48;
    const context = canvas.getContext('2d');
    context.font = font;
    context.fillText(text, 8, 32);
    return canvas.toDataURL();
  };
  const missing = draw('\\u{10FFFD}');
  return signs.filter((sign) => draw(sign) === missing);
}"""


def test_every_live_state_sign_has_a_glyph(page, transactional_db):
    page.goto("/")
    signs = [sign for sign in live.SIGNS.values() if sign]
    assert signs
    assert page.evaluate(DRAWN_AS_MISSING, signs) == []
