//! The plugin registry: every task, model, objective and projection plugin
//! registers a name, a one-line summary, an example of its RON settings and a
//! parser for those settings with `inventory::submit!` (through the
//! `register_*!` macros). The core never names a plugin.
//!
//! Data flow: an experiment file writes a component as a one-entry map,
//! `objective: {"ssm_vr": (projections: 1)}`. [`Component`]'s deserializer
//! reads the name, finds the plugin of that kind, and lets the plugin parse
//! its own settings in place (through `erased-serde`), so syntax and field
//! errors keep their line and column. The parsed settings implement a
//! `*Config` trait whose `build` validates them and makes the runtime object.
//!
//! A plugin may live in any crate linked into the program: the
//! [`register_plugin!`](crate::register_plugin) macro names `inventory` and
//! `erased-serde` through this crate (`slicedscore::__private`), so the
//! plugin's crate needs neither as a dependency. Each registration records
//! where it was made (crate, module, file, line); two plugins of one kind
//! with one name are an error ([`check_unique`]) that names both places,
//! reported by the command line before it does anything and by the first
//! component parsed through the registry.

use std::fmt;
use std::marker::PhantomData;

use rand_chacha::ChaCha8Rng;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::device::Device;
use crate::error::ConfigError;
use crate::model::{SampleEstimator, ScoreModel};
use crate::objective::Objective;
use crate::projection::Projection;
use crate::task::Task;

/// Settings of a task plugin, parsed from RON (and written back, so an
/// experiment is a typed value that serializes to RON).
pub trait TaskConfig: fmt::Debug + erased_serde::Serialize {
    /// Validates the settings, loads or generates the data (drawing from
    /// `rng`, the experiment's data stream) and initialises any networks the
    /// task trains itself on `dev`.
    fn build(&self, dev: &Device, rng: &mut ChaCha8Rng) -> Result<Box<dyn Task>, ConfigError>;
}

/// What a model plugin builds.
pub enum BuiltModel {
    /// A model trained by an objective.
    Trained(Box<dyn ScoreModel>),
    /// An estimator fitted from samples (no training).
    Fitted(Box<dyn SampleEstimator>),
}

impl BuiltModel {
    /// The trained model, or an error naming what was built instead.
    pub fn trained(self) -> Result<Box<dyn ScoreModel>, ConfigError> {
        match self {
            BuiltModel::Trained(m) => Ok(m),
            BuiltModel::Fitted(_) => Err(ConfigError::new(
                "",
                "this model is fitted from samples, not trained",
            )),
        }
    }
}

/// Settings of a model plugin, parsed from RON (and written back).
pub trait ModelConfig: fmt::Debug + erased_serde::Serialize {
    /// Validates the settings and initialises a model for data of dimension `dim`.
    fn build(
        &self,
        dev: &Device,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError>;

    /// A conditional model `h(z | c)` of `z ∈ ℝ^dim` given `context`
    /// conditioning columns (see [`ScoreModel::context_dim`]); an error by
    /// default, for models that cannot condition.
    fn build_conditional(
        &self,
        _dev: &Device,
        _dim: usize,
        context: usize,
        _rng: &mut ChaCha8Rng,
    ) -> Result<BuiltModel, ConfigError> {
        Err(ConfigError::new(
            "",
            format!("this model cannot condition on context ({context} columns)"),
        ))
    }
}

/// Settings of an objective plugin, parsed from RON (and written back).
pub trait ObjectiveConfig: fmt::Debug + erased_serde::Serialize {
    /// Validates the settings and makes the objective.
    fn build(&self) -> Result<Box<dyn Objective>, ConfigError>;
}

/// Settings of a projection plugin, parsed from RON (and written back).
pub trait ProjectionConfig: fmt::Debug + erased_serde::Serialize {
    /// Validates the settings and makes the projection.
    fn build(&self) -> Result<Box<dyn Projection>, ConfigError>;
}

/// Parses a plugin's settings from any serde deserializer.
pub type ParseFn<C> = for<'a, 'de> fn(
    &'a mut dyn erased_serde::Deserializer<'de>,
) -> Result<Box<C>, erased_serde::Error>;

/// Where a plugin was registered: filled in by
/// [`register_plugin!`](crate::register_plugin) from `module_path!()`,
/// `file!()` and `line!()` at the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// The module path of the registration (its first segment is the crate).
    pub module: &'static str,
    /// The source file, as the compiler names it (relative to the crate's
    /// package for a file inside it).
    pub file: &'static str,
    /// The line of the `register_plugin!` call.
    pub line: u32,
}

impl Registration {
    /// The crate that made the registration.
    pub fn krate(&self) -> &'static str {
        self.module.split("::").next().unwrap_or(self.module)
    }

    /// The file with `dir/../` steps folded (a module included by
    /// `#[path = "../…"]` reports `src/../plugins/…`).
    pub fn file_path(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for part in self.file.split(['/', '\\']) {
            match part {
                "." => {}
                ".." if parts.last().is_some_and(|p| *p != "..") => {
                    parts.pop();
                }
                _ => parts.push(part),
            }
        }
        parts.join("/")
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crate `{}` at {}:{} (module {})",
            self.krate(),
            self.file_path(),
            self.line,
            self.module
        )
    }
}

/// One registered plugin of config kind `C` (e.g. `dyn ModelConfig`).
pub struct Plugin<C: ?Sized + 'static> {
    /// The name used in experiment files.
    pub name: &'static str,
    /// One line for `slicedscore list`.
    pub summary: &'static str,
    /// Example settings in RON (what goes after the name), parsed in tests.
    pub example: &'static str,
    /// The settings parser.
    pub parse: ParseFn<C>,
    /// Where the plugin was registered.
    pub registered_at: Registration,
}

erased_serde::serialize_trait_object!(TaskConfig);
erased_serde::serialize_trait_object!(ModelConfig);
erased_serde::serialize_trait_object!(ObjectiveConfig);
erased_serde::serialize_trait_object!(ProjectionConfig);

inventory::collect!(Plugin<dyn TaskConfig>);
inventory::collect!(Plugin<dyn ModelConfig>);
inventory::collect!(Plugin<dyn ObjectiveConfig>);
inventory::collect!(Plugin<dyn ProjectionConfig>);

/// A kind of component (task, model, objective, projection).
pub trait ComponentKind: 'static {
    /// Singular name of the kind, e.g. `"model"`.
    const KIND: &'static str;
    /// Every registered plugin of this kind, sorted by name.
    fn plugins() -> Vec<&'static Plugin<Self>>;
}

macro_rules! component_kind {
    ($cfg:ident, $kind:literal) => {
        impl ComponentKind for dyn $cfg {
            const KIND: &'static str = $kind;
            fn plugins() -> Vec<&'static Plugin<Self>> {
                let mut v: Vec<_> = inventory::iter::<Plugin<dyn $cfg>>.into_iter().collect();
                v.sort_by_key(|p| p.name);
                v
            }
        }
    };
}
component_kind!(TaskConfig, "task");
component_kind!(ModelConfig, "model");
component_kind!(ObjectiveConfig, "objective");
component_kind!(ProjectionConfig, "projection");

/// Names of every registered plugin of kind `C`, sorted (a name
/// registered twice appears twice; see [`check_unique`]).
pub fn names<C: ?Sized + ComponentKind>() -> Vec<&'static str> {
    C::plugins().iter().map(|p| p.name).collect()
}

/// Looks up a plugin of kind `C` by name. Call [`check_unique`] first: with
/// a name registered twice this returns one of them, unspecified which.
pub fn find<C: ?Sized + ComponentKind>(name: &str) -> Option<&'static Plugin<C>> {
    C::plugins().into_iter().find(|p| p.name == name)
}

/// One name registered by two plugins of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The kind (`"objective"`, …).
    pub kind: &'static str,
    /// The name.
    pub name: &'static str,
    /// Where the first registration was made.
    pub first: Registration,
    /// Where the second registration was made.
    pub second: Registration,
}

/// Names registered more than once, each with both registrations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_duplicates(.0))]
pub struct DuplicateError(pub Vec<Duplicate>);

fn describe_duplicates(d: &[Duplicate]) -> String {
    let lines: Vec<String> = d
        .iter()
        .map(|d| {
            format!(
                "{} `{}` is registered twice: by {} and by {}",
                d.kind, d.name, d.first, d.second
            )
        })
        .collect();
    format!(
        "{}; rename one of them (every plugin name must be unique within its kind)",
        lines.join("; ")
    )
}

fn duplicates_of<C: ?Sized + ComponentKind>(out: &mut Vec<Duplicate>) {
    let mut plugins = C::plugins();
    // Sorted by name, then by place, so the report does not depend on link order.
    plugins.sort_by_key(|p| {
        let r = p.registered_at;
        (p.name, r.file, r.line, r.module)
    });
    for pair in plugins.windows(2) {
        if pair[0].name == pair[1].name {
            out.push(Duplicate {
                kind: C::KIND,
                name: pair[0].name,
                first: pair[0].registered_at,
                second: pair[1].registered_at,
            });
        }
    }
}

/// Checks that no two plugins of one kind share a name (computed once per
/// process). The command line calls this before any command; parsing a
/// component (an experiment file, a spec) fails with this error too.
pub fn check_unique() -> Result<(), DuplicateError> {
    static CHECKED: std::sync::OnceLock<Result<(), DuplicateError>> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let mut d = Vec::new();
            duplicates_of::<dyn TaskConfig>(&mut d);
            duplicates_of::<dyn ModelConfig>(&mut d);
            duplicates_of::<dyn ObjectiveConfig>(&mut d);
            duplicates_of::<dyn ProjectionConfig>(&mut d);
            if d.is_empty() {
                Ok(())
            } else {
                Err(DuplicateError(d))
            }
        })
        .clone()
}

/// The error text for an unknown plugin name, listing the registered ones.
pub fn unknown_name_message<C: ?Sized + ComponentKind>(name: &str) -> String {
    format!(
        "unknown {} `{name}`; registered {}s: {}",
        C::KIND,
        C::KIND,
        names::<C>().join(", ")
    )
}

/// A component chosen by name in an experiment file, with its parsed settings.
pub struct Component<C: ?Sized + ComponentKind> {
    /// The plugin's registered name.
    pub name: String,
    /// Its parsed settings.
    pub config: Box<C>,
}

impl<C: ?Sized + ComponentKind + fmt::Debug> fmt::Debug for Component<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{:?}: {:?}}}", self.name, self.config)
    }
}

struct SettingsSeed<C: ?Sized + 'static>(&'static Plugin<C>);

impl<'de, C: ?Sized + 'static> DeserializeSeed<'de> for SettingsSeed<C> {
    type Value = Box<C>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Box<C>, D::Error> {
        let mut erased = <dyn erased_serde::Deserializer>::erase(d);
        (self.0.parse)(&mut erased)
            .map_err(|e| de::Error::custom(format!("in settings of `{}`: {e}", self.0.name)))
    }
}

struct ComponentVisitor<C: ?Sized>(PhantomData<fn() -> Box<C>>);

impl<'de, C: ?Sized + ComponentKind> Visitor<'de> for ComponentVisitor<C> {
    type Value = Component<C>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} as a one-entry map {{\"name\": (settings)}}, one of: {}",
            C::KIND,
            names::<C>().join(", ")
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Component<C>, A::Error> {
        check_unique().map_err(de::Error::custom)?;
        let name: String = map
            .next_key()?
            .ok_or_else(|| de::Error::custom(format!("empty {} map: name one plugin", C::KIND)))?;
        let plugin =
            find::<C>(&name).ok_or_else(|| de::Error::custom(unknown_name_message::<C>(&name)))?;
        let config = map.next_value_seed(SettingsSeed(plugin))?;
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a {} names exactly one plugin; found a second entry `{extra}`",
                C::KIND
            )));
        }
        Ok(Component { name, config })
    }
}

/// Writes the one-entry map `{"name": (settings)}` an experiment file holds.
impl<C: ?Sized + ComponentKind + serde::Serialize> serde::Serialize for Component<C> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(&self.name, &*self.config)?;
        m.end()
    }
}

impl<'de, C: ?Sized + ComponentKind> Deserialize<'de> for Component<C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ComponentVisitor(PhantomData))
    }
}

/// Registers a plugin: `register_plugin!(ModelConfig, "mlp_score", "summary",
/// "(hidden: [64])", MlpScoreConfig);` where the config type implements
/// `serde::Deserialize` and the named config trait. Works from any crate
/// that depends on `slicedscore` (it needs no `inventory` or `erased-serde`
/// of its own), at module level, and records where it was called.
#[macro_export]
macro_rules! register_plugin {
    ($kind:ident, $name:literal, $summary:literal, $example:literal, $cfg:ty) => {
        $crate::__private::inventory::submit! {
            $crate::registry::Plugin::<dyn $crate::registry::$kind> {
                name: $name,
                summary: $summary,
                example: $example,
                parse: |d| {
                    let c: $cfg = $crate::__private::erased_serde::deserialize(d)?;
                    ::std::result::Result::Ok(::std::boxed::Box::new(c))
                },
                registered_at: $crate::registry::Registration {
                    module: ::std::module_path!(),
                    file: ::std::file!(),
                    line: ::std::line!(),
                },
            }
        }
    };
}
