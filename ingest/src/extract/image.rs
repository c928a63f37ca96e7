//! Images as documents (scans, phone photos, screenshots): recognised by their magic bytes,
//! read by OCR.

/// Image extensions accepted as documents.
pub(crate) const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp"];

/// Whether the bytes are an image format tesseract (leptonica) reads: PNG, JPEG, TIFF,
/// WebP or BMP.
pub(crate) fn is_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(b"\xFF\xD8\xFF")
        || bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || (bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP"))
        // "BM", then the file size and four reserved zero bytes: "BM" alone is too short a
        // signature (text can start with it).
        || (bytes.starts_with(b"BM") && bytes.get(6..10) == Some(&[0, 0, 0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_magic() {
        assert!(is_image(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
        assert!(is_image(b"\xFF\xD8\xFF\xE0\0\x10JFIF"));
        assert!(is_image(b"II*\0\x08\0\0\0"));
        assert!(is_image(b"RIFF\x24\0\0\0WEBPVP8 "));
        assert!(is_image(b"BM\x36\0\x0c\0\0\0\0\0\x36\0\0\0"));
        assert!(!is_image(b"BMW is a car maker"));
        assert!(!is_image(b"RIFF\x24\0\0\0WAVEfmt "));
        assert!(!is_image(b"%PDF-1.7"));
    }
}
