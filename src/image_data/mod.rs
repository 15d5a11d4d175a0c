//! Image data shared by the image tasks: IDX files ([`idx`]), data sets and
//! where they come from ([`source`]: MNIST, Fashion-MNIST, the 8×8 digits,
//! any IDX files), pixel scaling, dequantisation and the logit transform
//! ([`transform`]), and image grids for viewing ([`grid`]).
//!
//! Data flow: a task's settings name an [`source::ImageSource`];
//! [`source::ImageSource::load`] reads the files through [`idx`] (or builds
//! the digits) into an [`source::ImageSet`] of integer pixels; the task
//! scales, dequantises or binarises them with [`transform`] and draws
//! results with [`grid::tile_grid`].

pub mod grid;
pub mod idx;
pub mod source;
pub mod transform;
