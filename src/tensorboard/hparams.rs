//! The HParams plugin's summaries: what lets TensorBoard's HParams tab list the trials of a
//! search side by side with their hyperparameters and final metrics.
//!
//! The layout the plugin expects: the *experiment* (every hyperparameter with its domain, and
//! the metrics to show) in the log directory's root run; each trial in a run directory of its
//! own (`<logdir>/<trial>`) with its *session start* (the trial's hyperparameter values) and
//! *session end* (whether it finished); a metric `(group, tag)` of a trial is the scalar `tag`
//! in the run `<logdir>/<trial>/<group>`, so the trial's `val/epoch/loss` curve is its metric.
//! Each summary is a value with the plugin's metadata and an empty tensor, as TensorBoard's own
//! `hparams` summary module writes them.

use super::proto::hparams::{
    self as hp, DataType, DatasetType, HParamsPluginData, Interval, h_param_info,
    h_params_plugin_data,
};
use super::proto::summary;
use prost::Message;
use prost_types::value::Kind;

const PLUGIN: &str = "hparams";
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";

pub use hp::Status;

/// A hyperparameter's value in one trial.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl HParam {
    fn proto(&self) -> prost_types::Value {
        prost_types::Value {
            kind: Some(match self {
                HParam::Number(x) => Kind::NumberValue(*x),
                HParam::Text(s) => Kind::StringValue(s.clone()),
                HParam::Bool(b) => Kind::BoolValue(*b),
            }),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            HParam::Number(_) => DataType::Float64,
            HParam::Text(_) => DataType::String,
            HParam::Bool(_) => DataType::Bool,
        }
    }
}

/// The values a hyperparameter takes in a search.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// The values of a grid (all of one kind).
    Discrete(Vec<HParam>),
    /// A range numbers are drawn from.
    Interval { min: f64, max: f64 },
}

/// A hyperparameter of the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct HParamSpec {
    /// As `--set` spells it: `lr`, `hidden`, `optimizer.b1`.
    pub name: String,
    pub domain: Domain,
}

/// A metric of the experiment: the scalar `tag` of each trial's run `group` (`val`,
/// `epoch/accuracy`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub group: String,
    pub tag: String,
    /// Whether it is measured on the training split or the validation split.
    pub training: bool,
}

fn value(tag: &str, data: h_params_plugin_data::Data) -> summary::Value {
    let content = HParamsPluginData {
        version: 0,
        data: Some(data),
    };
    summary::Value {
        tag: tag.into(),
        metadata: Some(super::plugin_metadata(PLUGIN, content.encode_to_vec())),
        value: Some(summary::value::Value::Tensor(super::null_tensor())),
    }
}

/// The experiment, for the log directory's root run: every hyperparameter and its domain, the
/// metrics, and when the search started (seconds since the Unix epoch).
pub fn experiment(
    name: &str,
    hparams: &[HParamSpec],
    metrics: &[MetricSpec],
    time_created_secs: f64,
) -> summary::Value {
    let hparam_infos = hparams
        .iter()
        .map(|h| {
            let (ty, domain) = match &h.domain {
                Domain::Discrete(values) => (
                    values.first().map_or(DataType::Unset, HParam::data_type),
                    h_param_info::Domain::DomainDiscrete(prost_types::ListValue {
                        values: values.iter().map(HParam::proto).collect(),
                    }),
                ),
                Domain::Interval { min, max } => (
                    DataType::Float64,
                    h_param_info::Domain::DomainInterval(Interval {
                        min_value: *min,
                        max_value: *max,
                    }),
                ),
            };
            let differs = match &h.domain {
                Domain::Discrete(values) => values.len() > 1,
                Domain::Interval { min, max } => max > min,
            };
            hp::HParamInfo {
                name: h.name.clone(),
                r#type: ty as i32,
                domain: Some(domain),
                differs,
                ..hp::HParamInfo::default()
            }
        })
        .collect();
    let metric_infos = metrics
        .iter()
        .map(|m| hp::MetricInfo {
            name: Some(hp::MetricName {
                group: m.group.clone(),
                tag: m.tag.clone(),
            }),
            dataset_type: if m.training {
                DatasetType::DatasetTraining
            } else {
                DatasetType::DatasetValidation
            } as i32,
            ..hp::MetricInfo::default()
        })
        .collect();
    value(
        EXPERIMENT_TAG,
        h_params_plugin_data::Data::Experiment(hp::Experiment {
            name: name.into(),
            time_created_secs,
            hparam_infos,
            metric_infos,
            ..hp::Experiment::default()
        }),
    )
}

/// A trial's start, for its run directory: its hyperparameter values; `group` names the trials
/// that differ only by seed (empty: the trial is its own group).
pub fn session_start(
    hparams: &[(String, HParam)],
    group: &str,
    start_time_secs: f64,
) -> summary::Value {
    value(
        SESSION_START_TAG,
        h_params_plugin_data::Data::SessionStartInfo(hp::SessionStartInfo {
            hparams: hparams
                .iter()
                .map(|(name, v)| (name.clone(), v.proto()))
                .collect(),
            group_name: group.into(),
            start_time_secs,
            ..hp::SessionStartInfo::default()
        }),
    )
}

/// A trial's end, for its run directory.
pub fn session_end(status: Status, end_time_secs: f64) -> summary::Value {
    value(
        SESSION_END_TAG,
        h_params_plugin_data::Data::SessionEndInfo(hp::SessionEndInfo {
            status: status as i32,
            end_time_secs,
        }),
    )
}
