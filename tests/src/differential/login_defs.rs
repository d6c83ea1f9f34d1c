//! login.defs values as an administrator might write them, shared by the families
//! whose real programs read the file: `accounts` (the shadow suite) and `pam`
//! (pam_unix's ENCRYPT_METHOD, read by `pam_modutil_search_key`).

/// ENCRYPT_METHOD values: the methods, their case, quotes, comments, names no reader
/// knows, an empty value and a no-break space after the value.
pub const METHODS: &[&str] = &[
    "SHA512",
    "YESCRYPT",
    "SHA256",
    "MD5",
    "DES",
    "BCRYPT",
    "sha512",
    "Sha512",
    "yescrypt",
    "\"SHA512\"",
    "SHA512 # strong",
    "SHA512#",
    "\"YESCRYPT\" # comment",
    "SHA-512",
    "",
    "SHA512\u{a0}",
];

/// What spaces between a login.defs key and its value become.
pub const GAPS: &[&str] = &[" ", "\t", "  \t ", "\t\"", " \" "];
