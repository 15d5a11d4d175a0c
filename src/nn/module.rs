//! One visitor over a model's parameters.
//!
//! A type lists its parameters once, with [`crate::module!`], and gets both
//! walks of [`Module`]: by reference and by mutable reference, each giving
//! the parameter's name as the path of field names from the root
//! (`couplings.2.layers.0.weight`). Counting, checkpoints (names and
//! values), the optimizer (names, values, gradients), precision conversion
//! and the graph's leaves all go through these two walks, so no model keeps
//! lists of parameters by hand.

use std::sync::Arc;

use super::param::Param;
use crate::device::{Device, Mat};

/// The dotted path of the parameter being visited.
#[derive(Debug, Default, Clone)]
pub struct ParamPath {
    text: String,
    marks: Vec<usize>,
}

impl ParamPath {
    /// The empty path.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a segment (`layers`, `0`, `weight`, or a dotted name).
    pub fn push(&mut self, segment: &str) {
        self.marks.push(self.text.len());
        if segment.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('.');
        }
        self.text.push_str(segment);
    }

    /// Removes the last segment.
    pub fn pop(&mut self) {
        let m = self.marks.pop().expect("ParamPath::pop without push");
        self.text.truncate(m);
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Something with parameters: a model, a layer, a task's networks.
pub trait Module {
    /// Calls `f` with the full name and the parameter, for every parameter in
    /// a fixed order; names are `path` plus the field names below it.
    fn visit(&self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &Param));
    /// The same walk, by mutable reference.
    fn visit_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &mut Param));
}

impl Module for Param {
    fn visit(&self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &Param)) {
        f(path.as_str(), self)
    }
    fn visit_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &mut Param)) {
        f(path.as_str(), self)
    }
}

impl<T: Module> Module for Vec<T> {
    fn visit(&self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &Param)) {
        for (i, m) in self.iter().enumerate() {
            path.push(&i.to_string());
            m.visit(path, f);
            path.pop();
        }
    }
    fn visit_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &mut Param)) {
        for (i, m) in self.iter_mut().enumerate() {
            path.push(&i.to_string());
            m.visit_mut(path, f);
            path.pop();
        }
    }
}

impl<T: Module> Module for Option<T> {
    fn visit(&self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &Param)) {
        if let Some(m) = self {
            m.visit(path, f);
        }
    }
    fn visit_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &mut Param)) {
        if let Some(m) = self {
            m.visit_mut(path, f);
        }
    }
}

impl<T: Module + ?Sized> Module for Box<T> {
    fn visit(&self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &Param)) {
        (**self).visit(path, f)
    }
    fn visit_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &mut Param)) {
        (**self).visit_mut(path, f)
    }
}

/// Implements [`Module`] by listing the fields that hold parameters, each
/// optionally with the name its parameters go by (default: the field name;
/// `""` adds no segment):
///
/// ```ignore
/// slicedscore::module!(Dkef { phi as "features", skip as "features.skip.weight", alpha });
/// ```
#[macro_export]
macro_rules! module {
    ($ty:ty { $($field:tt $(as $name:literal)?),* $(,)? }) => {
        impl $crate::nn::Module for $ty {
            #[allow(unused_variables)]
            fn visit(
                &self,
                path: &mut $crate::nn::ParamPath,
                f: &mut dyn FnMut(&str, &$crate::nn::Param),
            ) {
                $(
                    path.push($crate::module!(@name $field $($name)?));
                    $crate::nn::Module::visit(&self.$field, path, f);
                    path.pop();
                )*
            }
            #[allow(unused_variables)]
            fn visit_mut(
                &mut self,
                path: &mut $crate::nn::ParamPath,
                f: &mut dyn FnMut(&str, &mut $crate::nn::Param),
            ) {
                $(
                    path.push($crate::module!(@name $field $($name)?));
                    $crate::nn::Module::visit_mut(&mut self.$field, path, f);
                    path.pop();
                )*
            }
        }
    };
    (@name $field:tt) => { stringify!($field) };
    (@name $field:tt $name:literal) => { $name };
}

/// Every parameter with its name, in visiting order.
pub fn named_params(m: &(impl Module + ?Sized)) -> Vec<(String, Param)> {
    let mut out = Vec::new();
    m.visit(&mut ParamPath::new(), &mut |name, p| {
        out.push((name.to_string(), p.clone()))
    });
    out
}

/// The values of the trainable parameters, in visiting order.
pub fn trainable_values(m: &(impl Module + ?Sized)) -> Vec<Mat> {
    let mut out = Vec::new();
    m.visit(&mut ParamPath::new(), &mut |_, p| {
        if p.is_trainable() {
            out.push(p.value.clone())
        }
    });
    out
}

/// The number of trainable scalars.
pub fn num_trainable(m: &(impl Module + ?Sized)) -> usize {
    let mut n = 0;
    m.visit(&mut ParamPath::new(), &mut |_, p| {
        if p.is_trainable() {
            n += p.numel()
        }
    });
    n
}

/// Calls `f` on every parameter by mutable reference, with its name.
pub fn for_each_param_mut(m: &mut (impl Module + ?Sized), mut f: impl FnMut(&str, &mut Param)) {
    m.visit_mut(&mut ParamPath::new(), &mut |name, p| f(name, p));
}

/// Moves every parameter to `dev` (its backend and precision).
pub fn convert(m: &mut (impl Module + ?Sized), dev: &Device) {
    for_each_param_mut(m, |_, p| p.value = p.value.to_device(dev));
}

/// Two modules side by side (a model and a task's own networks), visited
/// as one: the first's parameters, then the second's.
pub struct Pair<'a, A: ?Sized, B: ?Sized>(pub &'a mut A, pub &'a mut B);

impl<A: Module + ?Sized, B: Module + ?Sized> Module for Pair<'_, A, B> {
    fn visit(&self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &Param)) {
        self.0.visit(path, f);
        self.1.visit(path, f);
    }
    fn visit_mut(&mut self, path: &mut ParamPath, f: &mut dyn FnMut(&str, &mut Param)) {
        self.0.visit_mut(path, f);
        self.1.visit_mut(path, f);
    }
}

/// Shared index lists (column selections) used by models.
pub type Indices = Arc<[usize]>;
