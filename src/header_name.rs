//! How an upstream may read a name it is sent: header names as CGI, WSGI
//! and Rack fold them, cookie and query parameter names as PHP, ASP.NET
//! and Python do. Pure: the config's checks, the rules and the request
//! path compare names alike through it.

/// Header names the way CGI, WSGI and Rack read them: `_` and `-` alike,
/// case ignored.
pub fn same_field(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let fold = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            fold(x) == fold(y)
        })
}

/// Whether an upstream could read the cookie or query parameter `written`
/// as `name`: ASP.NET ignores case, PHP trims leading spaces and reads
/// `.` and ` ` as `_`, Python's cookie parser trims spaces around the name.
pub fn same_name(written: &str, name: &str) -> bool {
    let written = written.trim();
    let fold = |c: u8| match c {
        b'.' | b' ' => b'_',
        c => c.to_ascii_lowercase(),
    };
    written.len() == name.len()
        && written
            .bytes()
            .zip(name.bytes())
            .all(|(a, b)| fold(a) == fold(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_fold_underscores_and_case() {
        assert!(same_field("X_User_Sub", "x-user-sub"));
        assert!(!same_field("x-user-subx", "x-user-sub"));
    }

    #[test]
    fn names_fold_as_php_and_asp_net_read_them() {
        assert!(same_name(" Access.Token", "access_token"));
        assert!(!same_name("access-token", "access_token"));
    }
}
