#!/usr/bin/env bash
# `make demo`: the pipeline, step by step, on demo_data/. Outputs go to demo_out/ (made anew).
# Usage: bash demo_data/run_demo.sh [PYTHON] [OUT_DIR]
set -euo pipefail
PY=${1:-.venv/bin/python}
OUT=${2:-demo_out}
DEMO=demo_data
dl() { "$PY" -m dltools "$@"; }
step() { printf '\n== %s\n' "$*"; }

rm -rf "$OUT"
mkdir -p "$OUT"

step "step 1: split the demo photos into train/ and test/"
cp -r "$DEMO/images" "$OUT/images"
dl split -i "$OUT/images" -p 0.75 --seed 0

step "step 2: dense labels from the shipped strokes (photo, then GeoTIFF with GeoJSON strokes)"
# the GeoTIFF's labels: a styled COG (+ .qml) and, with --vector, a GeoPackage of polygons
"$PY" create_groundtruth/label_1image_crf.py -i "$DEMO/images/coast_01.jpg" \
    -l "$DEMO/labels.txt" -c "$DEMO/colors.txt" \
    --doodles "$DEMO/doodles/coast_01_doodles.png" --out-dir "$OUT/groundtruth"
"$PY" create_groundtruth/label_1geotiff_crf.py -i "$DEMO/geotiff/coast_ortho.tif" \
    -l "$DEMO/labels.txt" -c "$DEMO/colors.txt" -s 0.5 --confidence --vector \
    --doodles "$DEMO/doodles/coast_ortho_doodles.geojson" --out-dir "$OUT/groundtruth"
dl polygonize "$OUT/groundtruth/coast_ortho_mres_geo.tif" --min-area 0.5 --simplify 0.1 \
    --confidence "$OUT/groundtruth/coast_ortho_mres_confidence.tif" \
    -o "$OUT/groundtruth/coast_ortho_simplified.gpkg"

step "step 3: class-pure 64-px tiles from the labelled photos (label PNGs in demo_data/labels)"
"$PY" create_library/retile.py -i "$OUT/train" --label-dir "$DEMO/labels" \
    -l "$DEMO/labels.txt" -t 64 -a 0.9
# the held-out tiles of step 5: every tile over 90% one class, none thinned
"$PY" create_library/retile.py -i "$OUT/test" --label-dir "$DEMO/labels" \
    -l "$DEMO/labels.txt" -t 64 --legacy

step "step 4: train a small tile CNN from scratch (no download; see the README for TF-Hub modules)"
"$PY" train_dcnn_tfhub/retrain.py --image_dir "$OUT/train/tile_64" --tfhub_module scratch \
    --how_many_training_steps 200 --train_batch_size 32 --eval_step_interval 50 \
    --output_graph "$OUT/tile_model" --output_labels "$OUT/tile_labels.txt" \
    --summaries_dir "$OUT/summaries" --seed 0

step "step 5: score method 1's tile CNN (step 4) on the test photos' tiles"
"$PY" eval_imrecog/test_class_tiles.py -i "$OUT/test/tile_64" -l "$OUT/tile_labels.txt" \
    -m "$OUT/tile_model" -n 100 -o "$OUT"

step "steps 6-7: segment the test photos (tile CNN + per-image MLP; the CRF; the raw tile map), score them"
# colours come from labeldefs.txt, matched by name to the model's classes; the demo model has no
# foam or road tiles, so --allow-missing scores those manual classes as errors instead of stopping
for refine in mlp none; do
    dl segment "$OUT/test" -m "$OUT/tile_model" -l "$OUT/tile_labels.txt" -c "$DEMO/labeldefs.txt" \
        -t 64 --refine "$refine" --out-dir "$OUT/segment_$refine"
done
for image in "$OUT"/test/*.jpg; do   # the original script: positional arguments
    "$PY" semseg_crf/semseg_cnn_crf.py "$image" "$OUT/tile_model" "$OUT/tile_labels.txt" \
        "$DEMO/labeldefs.txt" 64 0.5 0.5 1 0.25 --refine crf --out-dir "$OUT/segment_crf"
done
declare -A METHOD=([mlp]="tile CNN + per-image MLP" [crf]="tile CNN + dense CRF" \
    [none]="raw tile map of the tile CNN")
for refine in mlp crf none; do
    step "step 7: score method 1, ${METHOD[$refine]} (--refine $refine), against the manual labels"
    "$PY" eval_semseg/test_pixels.py -i "$OUT/segment_$refine" --true-dir "$DEMO/labels" \
        --true-glob '*_label.png' -l "$DEMO/labels.txt" --allow-missing
done

step "step 8: method 2, a fully convolutional network: train briefly, then segment the ortho GeoTIFF"
# From scratch with the smallest encoder, to stay fast and offline; real runs pass the ImageNet
# weights: --encoder-weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
"$PY" semseg_fullyconv/train.py --name "$OUT/fcn_run" --data-dir "$OUT/train" \
    --label-dir "$DEMO/labels" --labeldefs "$DEMO/labeldefs.txt" --encoder-weights none \
    --alpha 0.35 --tile-size 128 --batch-size 8 --epochs 3 --steps-per-epoch 6
"$PY" semseg_fullyconv/infer.py --name "$OUT/fcn_run" \
    --samples-dir "$DEMO/geotiff/coast_ortho.tif" --output-dir "$OUT/fcn" --vector

step "done: outputs in $OUT/"
