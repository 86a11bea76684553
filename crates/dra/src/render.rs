//! DRA objects as text: YAML documents (each after `---`) or JSON (one object, or a
//! `v1` List of several).

use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;

/// How objects are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One YAML document per object, each starting with `---`, every string quoted
    /// ([`linkwise_core::yaml`]).
    Yaml,
    /// Pretty-printed JSON ending in a newline: the object itself when there is one,
    /// else a `v1` `List` of them.
    Json,
}

/// `objects` written in `format`. No objects is an empty text in YAML and an empty List
/// in JSON.
pub fn render<T: Serialize>(objects: &[T], format: Format) -> Result<String, Error> {
    let mut values = objects
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<Value>, _>>()?;
    Ok(match format {
        Format::Json => {
            let v = if values.len() == 1 {
                values.pop().unwrap_or(Value::Null)
            } else {
                json!({ "apiVersion": "v1", "kind": "List", "items": values })
            };
            let mut text = serde_json::to_string_pretty(&v)?;
            text.push('\n');
            text
        }
        Format::Yaml => {
            let mut text = String::new();
            for o in &values {
                text.push_str("---\n");
                text.push_str(&linkwise_core::yaml::to_yaml(o));
            }
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Driver, class};

    #[test]
    fn one_object_is_itself_and_several_are_a_list() {
        let c = class(&Driver::new("gpu.example.com").unwrap());
        let one = render(std::slice::from_ref(&c), Format::Json).unwrap();
        assert!(one.ends_with("}\n"));
        let v: Value = serde_json::from_str(&one).unwrap();
        assert_eq!(v["kind"], "DeviceClass");
        assert_eq!(
            v["spec"]["selectors"][0]["cel"]["expression"],
            "device.driver == \"gpu.example.com\""
        );
        let two: Value =
            serde_json::from_str(&render(&[c.clone(), c.clone()], Format::Json).unwrap()).unwrap();
        assert_eq!(two["kind"], "List");
        assert_eq!(two["items"].as_array().map(Vec::len), Some(2));
        let yaml = render(&[c.clone(), c], Format::Yaml).unwrap();
        assert!(yaml.starts_with("---\napiVersion: "));
        assert_eq!(yaml.matches("---\n").count(), 2);
        assert_eq!(render::<Value>(&[], Format::Yaml).unwrap(), "");
    }
}
