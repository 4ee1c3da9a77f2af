//! Small constructors for the ONNX messages the exporter writes.

use super::onnx::{
    AttributeProto, GraphProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};
use super::sym::Dim;
use crate::ir::DType;

pub fn elem_type(d: DType) -> i32 {
    match d {
        DType::F32 => DataType::Float as i32,
        DType::F64 => DataType::Double as i32,
        DType::I32 => DataType::Int32 as i32,
        DType::Bool => DataType::Bool as i32,
    }
}

pub const INT64: i32 = DataType::Int64 as i32;

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attr(name, AttributeType::Int)
    }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, AttributeType::Ints)
    }
}

pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attr(name, AttributeType::Float)
    }
}

pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: Some(v.as_bytes().to_vec()),
        ..attr(name, AttributeType::String)
    }
}

pub fn graph(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        g: Some(g),
        ..attr(name, AttributeType::Graph)
    }
}

/// A tensor's type with a shape; `None` leaves the shape (even the rank) open.
pub fn value_info(name: &str, elem: i32, shape: Option<&[Dim]>) -> ValueInfoProto {
    let shape = shape.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                value: Some(if d.is_fixed() {
                    tensor_shape_proto::dimension::Value::DimValue(d.fixed)
                } else {
                    tensor_shape_proto::dimension::Value::DimParam(d.param_name())
                }),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A tensor of raw little-endian bytes.
pub fn tensor(name: &str, elem: i32, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        data_type: Some(elem),
        dims: dims.to_vec(),
        raw_data: Some(raw),
        ..Default::default()
    }
}
