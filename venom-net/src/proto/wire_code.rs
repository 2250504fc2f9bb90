//! Enums whose variants have fixed one-byte wire codes: one declaration
//! gives the enum (`as u8` encodes) and its checked decoder, so a code is
//! written exactly once.

/// Declares a `#[repr(u8)]` enum with an explicit wire code per variant and
/// `from_code`, the checked inverse of `as u8`.
macro_rules! wire_code_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            /// The variant whose wire code is `code`, if any.
            pub fn from_code(code: u8) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use wire_code_enum;
