//! The Azure ids that become parts of Resource Manager and login URLs: the subscription and the
//! tenant (GUIDs), and the resource group (Azure's naming rules for `Microsoft.Resources/
//! resourcegroups`: 1 to 90 characters, letters or digits, `_`, `-`, `.`, `(`, `)`, not ending
//! in a period). Checked at validation, before anything is sent: a value with `/`, `?`, `#` or
//! `..` would otherwise point the request (and its bearer token) at another resource.

/// Longest resource group name Azure accepts.
pub(crate) const MAX_RESOURCE_GROUP_LEN: usize = 90;

/// The value as a message shows it: escaped, at most 64 characters.
fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .collect();
    if value.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// Why `value` is not a GUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal digits, as
/// the Azure portal shows subscription and tenant ids), if it is not. Braces and other forms
/// are refused: ARM's URLs use this one.
pub(crate) fn guid_problem(value: &str) -> Option<String> {
    let groups: Vec<&str> = value.split('-').collect();
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    (!ok).then(|| {
        format!(
            "`{}` is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)",
            shown(value)
        )
    })
}

/// Why `value` is not a resource group name Azure accepts, if it is not.
pub(crate) fn resource_group_problem(value: &str) -> Option<String> {
    let len = value.chars().count();
    if len > MAX_RESOURCE_GROUP_LEN {
        return Some(format!(
            "must be at most {MAX_RESOURCE_GROUP_LEN} characters, got {len}"
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')')))
    {
        return Some(format!(
            "`{}` has `{}`: a resource group name has only letters, digits, `_`, `-`, `.`, `(` and `)`",
            shown(value),
            bad.escape_debug()
        ));
    }
    value
        .ends_with('.')
        .then(|| format!("`{}` must not end with a period", shown(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        assert_eq!(guid_problem("72f988bf-86f1-41af-91ab-2d7cd011db47"), None);
        assert_eq!(guid_problem("72F988BF-86F1-41AF-91AB-2D7CD011DB47"), None);
        for bad in [
            "",
            "s",
            "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
            "72f988bf86f141af91ab2d7cd011db47",
            "72f988bf-86f1-41af-91ab-2d7cd011db4g",
            "72f988bf-86f1-41af-91ab-2d7cd011db47/../x",
            "72f988bf-86f1-41af-91ab-2d7cd011db4",
            "72f988bf-86f1-41af-91ab-2d7cd011db477",
        ] {
            assert!(guid_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(
            guid_problem("a\nb").unwrap(),
            "`a\\nb` is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)"
        );
        let long = guid_problem(&"x".repeat(100)).unwrap();
        assert!(
            long.starts_with(&format!("`{}…`", "x".repeat(64))),
            "{long}"
        );
    }

    #[test]
    fn resource_groups() {
        for good in [
            "kasm",
            "Kasm_VDI-(prod).eu",
            "a",
            "rg.1",
            "grüße",
            &"r".repeat(90),
        ] {
            assert_eq!(resource_group_problem(good), None, "{good}");
        }
        assert_eq!(
            resource_group_problem(&"r".repeat(91)).unwrap(),
            "must be at most 90 characters, got 91"
        );
        assert_eq!(
            resource_group_problem("kasm/../other").unwrap(),
            "`kasm/../other` has `/`: a resource group name has only letters, digits, `_`, `-`, `.`, `(` and `)`"
        );
        for bad in ["a?b", "a#b", "a b", "a%2f", "a\\b", "a\u{0}"] {
            assert!(resource_group_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(
            resource_group_problem("kasm.").unwrap(),
            "`kasm.` must not end with a period"
        );
        assert!(resource_group_problem("..").is_some());
    }
}
