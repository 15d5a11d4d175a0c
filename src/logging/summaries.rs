//! Summaries for TensorBoard's text and hparams plugins, built from the
//! protos of `tensorboard-proto` (the crate `tensorboard-rs` is built on,
//! whose own `add_text` and `add_hparams` are unimplemented).
//!
//! Data flow: [`text_summary`] and [`hparams_summary`] turn a string or an
//! [`HParamsRecord`] into a `Summary` holding one value whose metadata names
//! the plugin; the TensorBoard logger writes it as an ordinary event. The
//! layout is what TensorBoard's own writers produce:
//!
//! * text: a scalar `DT_STRING` tensor, plugin `text` with an empty
//!   `TextPluginData` (version 0); the string is rendered as Markdown;
//! * hparams: plugin `hparams`, content an `HParamsPluginData` (version 0)
//!   holding the experiment, session-start or session-end message, and a
//!   scalar `DT_FLOAT` 0 tensor (what TensorBoard adds when it is missing).

use protobuf::well_known_types::Value;
use protobuf::{Message, RepeatedField};
use tensorboard_proto::api;
use tensorboard_proto::plugin_hparams::{HParamsPluginData, SessionEndInfo, SessionStartInfo};
use tensorboard_proto::plugin_text::TextPluginData;
use tensorboard_proto::summary::{
    Summary, SummaryMetadata, SummaryMetadata_PluginData, Summary_Value,
};
use tensorboard_proto::tensor::TensorProto;
use tensorboard_proto::types::DataType;

use super::hparams::{HParamType, HParamValue, HParamsRecord, SessionStatus, PLUGIN_NAME};

/// Encodes a message; encoding an in-memory message cannot fail except for
/// a size over 2 GiB, reported as text.
fn encode(m: &dyn Message) -> Result<Vec<u8>, String> {
    m.write_to_bytes().map_err(|e| e.to_string())
}

fn one_value(tag: &str, plugin: &str, content: Vec<u8>, tensor: TensorProto) -> Summary {
    let mut data = SummaryMetadata_PluginData::new();
    data.set_plugin_name(plugin.to_string());
    data.set_content(content);
    let mut meta = SummaryMetadata::new();
    meta.set_plugin_data(data);
    let mut value = Summary_Value::new();
    value.set_tag(tag.to_string());
    value.set_metadata(meta);
    value.set_tensor(tensor);
    let mut summary = Summary::new();
    summary.set_value(RepeatedField::from_vec(vec![value]));
    summary
}

/// A text summary: `markdown` under `tag`, for the text dashboard.
pub fn text_summary(tag: &str, markdown: &str) -> Result<Summary, String> {
    let mut tensor = TensorProto::new();
    tensor.set_dtype(DataType::DT_STRING);
    tensor.set_string_val(RepeatedField::from_vec(vec![markdown.as_bytes().to_vec()]));
    let content = encode(&TextPluginData::new())?;
    Ok(one_value(tag, "text", content, tensor))
}

fn proto_value(v: &HParamValue) -> Value {
    let mut out = Value::new();
    match v {
        HParamValue::Number(x) => out.set_number_value(*x),
        HParamValue::Text(s) => out.set_string_value(s.clone()),
        HParamValue::Bool(b) => out.set_bool_value(*b),
    }
    out
}

fn proto_status(s: SessionStatus) -> api::Status {
    match s {
        SessionStatus::Unknown => api::Status::STATUS_UNKNOWN,
        SessionStatus::Success => api::Status::STATUS_SUCCESS,
        SessionStatus::Failure => api::Status::STATUS_FAILURE,
        SessionStatus::Running => api::Status::STATUS_RUNNING,
    }
}

fn proto_type(t: HParamType) -> api::DataType {
    match t {
        HParamType::Number => api::DataType::DATA_TYPE_FLOAT64,
        HParamType::Text => api::DataType::DATA_TYPE_STRING,
        HParamType::Bool => api::DataType::DATA_TYPE_BOOL,
    }
}

/// An hparams-plugin summary for `record`, under the tag TensorBoard
/// expects for it.
pub fn hparams_summary(record: &HParamsRecord) -> Result<Summary, String> {
    let mut data = HParamsPluginData::new();
    data.set_version(0);
    match record {
        HParamsRecord::Experiment { hparams, metrics } => {
            let mut e = api::Experiment::new();
            let infos = hparams
                .iter()
                .map(|h| {
                    let mut i = api::HParamInfo::new();
                    i.set_name(h.name.clone());
                    i.set_description(h.description.clone());
                    i.set_field_type(proto_type(h.kind));
                    i
                })
                .collect();
            e.set_hparam_infos(RepeatedField::from_vec(infos));
            let metrics = metrics
                .iter()
                .map(|m| {
                    let mut name = api::MetricName::new();
                    name.set_tag(m.tag.clone());
                    let mut i = api::MetricInfo::new();
                    i.set_name(name);
                    i.set_description(m.description.clone());
                    i
                })
                .collect();
            e.set_metric_infos(RepeatedField::from_vec(metrics));
            data.set_experiment(e);
        }
        HParamsRecord::SessionStart {
            hparams,
            start_time_secs,
        } => {
            let mut s = SessionStartInfo::new();
            s.set_hparams(
                hparams
                    .iter()
                    .map(|(k, v)| (k.clone(), proto_value(v)))
                    .collect(),
            );
            s.set_start_time_secs(*start_time_secs);
            data.set_session_start_info(s);
        }
        HParamsRecord::SessionEnd {
            status,
            end_time_secs,
        } => {
            let mut s = SessionEndInfo::new();
            s.set_status(proto_status(*status));
            s.set_end_time_secs(*end_time_secs);
            data.set_session_end_info(s);
        }
    }
    let mut null = TensorProto::new();
    null.set_dtype(DataType::DT_FLOAT);
    null.set_float_val(vec![0.0]);
    Ok(one_value(record.tag(), PLUGIN_NAME, encode(&data)?, null))
}
