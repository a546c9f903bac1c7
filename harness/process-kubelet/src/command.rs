//! The argv of a container: Kubernetes `command`/`args` semantics over the image entrypoint,
//! with `$(VAR)` expansion.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Container;

use crate::config::LocalImage;

/// Why no argv could be formed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("container {0:?} has no command and its image has no entrypoint")]
    Empty(String),
}

/// `command` replaces the image's entrypoint (and drops its default args); `args` replaces
/// only the default args (`entrypoint[1..]`). `$(VAR)` is expanded from `env`.
pub fn container_argv(
    container: &Container,
    image: &LocalImage,
    env: &[(String, String)],
) -> Result<Vec<String>, CommandError> {
    let command = container.command.as_deref().filter(|c| !c.is_empty());
    let args = container.args.as_deref().filter(|a| !a.is_empty());
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |items: &[String]| -> Vec<String> {
        items
            .iter()
            .map(|s| expand(s, &|name| lookup.get(name).map(|v| v.to_string())))
            .collect()
    };
    let argv: Vec<String> = match (command, args) {
        (Some(command), args) => {
            let mut argv = expand_all(command);
            argv.extend(args.map(expand_all).unwrap_or_default());
            argv
        }
        (None, Some(args)) => {
            let mut argv: Vec<String> = image.entrypoint.iter().take(1).cloned().collect();
            argv.extend(expand_all(args));
            argv
        }
        (None, None) => image.entrypoint.clone(),
    };
    if argv.is_empty() {
        return Err(CommandError::Empty(container.name.clone()));
    }
    Ok(argv)
}

/// Kubernetes variable expansion: `$(NAME)` becomes the value when `lookup` knows it and stays
/// verbatim otherwise; `$$` escapes a dollar sign.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> LocalImage {
        LocalImage {
            root: "/srv/img".into(),
            mount_path: "/app".into(),
            entrypoint: vec!["/app/srv".into(), "-conf".into(), "/app/conf".into()],
            working_dir: None,
            env: Default::default(),
        }
    }

    fn container(command: Option<&[&str]>, args: Option<&[&str]>) -> Container {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Container {
            name: "c".into(),
            command: command.map(owned),
            args: args.map(owned),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_when_nothing_given() {
        let argv = container_argv(&container(None, None), &image(), &[]).unwrap();
        assert_eq!(argv, ["/app/srv", "-conf", "/app/conf"]);
    }

    #[test]
    fn args_replace_default_args_only() {
        let argv = container_argv(&container(None, Some(&["-x"])), &image(), &[]).unwrap();
        assert_eq!(argv, ["/app/srv", "-x"]);
    }

    #[test]
    fn command_replaces_entrypoint_and_default_args() {
        let argv =
            container_argv(&container(Some(&["/bin/sh", "-c"]), None), &image(), &[]).unwrap();
        assert_eq!(argv, ["/bin/sh", "-c"]);
        let argv = container_argv(
            &container(Some(&["/bin/sh"]), Some(&["-c", "true"])),
            &image(),
            &[],
        )
        .unwrap();
        assert_eq!(argv, ["/bin/sh", "-c", "true"]);
    }

    #[test]
    fn empty_lists_count_as_absent() {
        let argv = container_argv(&container(Some(&[]), Some(&[])), &image(), &[]).unwrap();
        assert_eq!(argv, ["/app/srv", "-conf", "/app/conf"]);
    }

    #[test]
    fn no_entrypoint_and_no_command_is_an_error() {
        let mut img = image();
        img.entrypoint.clear();
        assert_eq!(
            container_argv(&container(None, None), &img, &[]),
            Err(CommandError::Empty("c".into()))
        );
    }

    #[test]
    fn expands_variables_in_command_and_args() {
        let env = vec![("POD".to_string(), "p-1".to_string())];
        let argv = container_argv(
            &container(Some(&["echo", "$(POD)"]), Some(&["$$(POD)", "$(NOPE)"])),
            &image(),
            &env,
        )
        .unwrap();
        assert_eq!(argv, ["echo", "p-1", "$(POD)", "$(NOPE)"]);
    }

    #[test]
    fn expand_handles_edge_cases() {
        let lookup = |name: &str| (name == "A").then(|| "1".to_string());
        assert_eq!(expand("$(A)$(A)", &lookup), "11");
        assert_eq!(expand("cost $5", &lookup), "cost $5");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("end$", &lookup), "end$");
        assert_eq!(expand("$$$(A)", &lookup), "$1");
    }
}
