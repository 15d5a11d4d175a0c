//! The latent-variable tasks `implicit_vae` and `wae` (the sliced score
//! matching paper's Table 2): autoencoders on binarised images whose
//! entropy or KL gradient comes from the experiment's model as a score
//! estimator, evaluated by AIS negative log-likelihood.
//!
//! The two plugins share this family's modules and nothing else: binarised
//! data ([`data`]), encoder and decoder ([`networks`]), score estimates of
//! the codes through the `ScoreModel` trait ([`scores`]), AIS evaluation and
//! image grids ([`evaluation`]), and the glue of all these ([`autoencoder`]).

pub mod autoencoder;
pub mod data;
pub mod evaluation;
pub mod implicit_vae;
pub mod networks;
pub mod scores;
pub mod wae;
