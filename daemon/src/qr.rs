//! The QR code a login shows to set up an authenticator app, drawn in text with Unicode
//! half blocks (two rows of modules per line), without colours: PAM messages are plain
//! text, and ssh clients show escape sequences as garbage. A symbol needs dark modules on
//! a light ground, so the drawing depends on the terminal's background.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use twofold_config::Background;

/// `text` as a QR code for a terminal with a `background` ground; None if it does not fit.
pub fn render(text: &str, background: Background) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    // A glyph's block is drawn in the text colour: on a dark ground the blocks must be
    // the light modules (the quiet zone included), on a light ground the dark ones.
    let (dark, light) = match background {
        Background::Dark => (Dense1x2::Light, Dense1x2::Dark),
        Background::Light => (Dense1x2::Dark, Dense1x2::Light),
    };
    Some(
        code.render::<Dense1x2>()
            .dark_color(dark)
            .light_color(light)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_backgrounds_draw_each_others_negative() {
        let uri = "otpauth://totp/host:alice%40host?secret=JBSWY3DPEHPK3PXP&issuer=host";
        let dark = render(uri, Background::Dark).unwrap();
        let light = render(uri, Background::Light).unwrap();
        assert_eq!(dark.lines().count(), light.lines().count());
        let swap = |c: char| match c {
            '█' => ' ',
            ' ' => '█',
            '▀' => '▄',
            '▄' => '▀',
            c => c,
        };
        // Line by line, but the last: with an odd number of rows its lower half is the
        // terminal's own ground in both.
        let negative: String = light.chars().map(swap).collect();
        let (d, n): (Vec<&str>, Vec<&str>) = (dark.lines().collect(), negative.lines().collect());
        assert_eq!(d[..d.len() - 1], n[..n.len() - 1]);
        // The quiet zone is light: blocks on a dark ground, blanks on a light one.
        assert!(dark.lines().next().unwrap().chars().all(|c| c == '█'));
        assert!(light.lines().next().unwrap().chars().all(|c| c == ' '));
    }
}
