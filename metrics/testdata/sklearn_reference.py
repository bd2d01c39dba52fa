# The scikit-learn reference values of sklearn_test.go (scikit-learn 1.2.1,
# numpy 1.24.2): python3 testdata/sklearn_reference.py
from sklearn.metrics import precision_recall_fscore_support
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_squared_error, mean_absolute_error, r2_score
y = np.array([2, 0, 0, 2, 0, 0, 1, 2, 1, 2, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0, 2])
P = np.array([[26, 64, 10], [9, 3, 88], [73, 24, 3], [38, 22, 40], [7, 53, 40], [86, 3, 11], [43, 10, 47], [1, 97, 2], [15, 60, 25], [77, 14, 9], [3, 36, 61], [65, 32, 3], [11, 64, 25], [6, 0, 94], [29, 30, 41], [62, 7, 31], [21, 51, 28], [50, 30, 20], [4, 70, 26], [62, 31, 7], [20, 60, 20], [10, 0, 90], [40, 20, 40]]) / 100
pred = P.argmax(axis=1)
print("pred", list(pred))
print("accuracy", repr(accuracy_score(y, pred)))
print("macro_f1", repr(f1_score(y, pred, average="macro", zero_division=0)))
print("per_class_f1", [repr(v) for v in f1_score(y, pred, average=None, zero_division=0)])
print("precision, recall, f1, support", precision_recall_fscore_support(y, pred, zero_division=0))
print("log_loss", repr(log_loss(y, P, labels=[0, 1, 2], eps=1e-15)))
P32 = P.astype(np.float32).astype(np.float64)
print("log_loss_f32", repr(log_loss(y, P32, labels=[0, 1, 2], eps=1e-15)))
yb = (y == 1).astype(int); pb = P[:, 1]
print("log_loss_binary", repr(log_loss(yb, pb, eps=1e-15)))
# a class only predicted (3) and one only true (2)
t2 = [0, 1, 2, 2, 1, 0]; p2 = [0, 1, 3, 1, 1, 3]
print("edge_macro_f1", repr(f1_score(t2, p2, average="macro", zero_division=0)))
print("edge_per_class", [repr(v) for v in f1_score(t2, p2, average=None, zero_division=0)])
yr = np.array([2.29, 2.16, 4.25, 3.37, 5.74, 1.89, 3.58, 6.88, 2.52, 4.07, 6.14, 4.11, 1.73, -1.12, 7.79, 3.86, 5.52, 2.05, 6.64, 4.04, 3.1, 1.2, 3.74])
pr = np.array([1.8, 1.94, 2.63, 2.88, 5.9, 0.64, 3.65, 7.54, 2.21, 3.45, 5.52, 5.05, 0.2, -1.42, 7.37, 4.0, 5.45, 0.94, 8.68, 4.22, 1.76, 0.31, 3.84])
for f in (mean_squared_error, mean_absolute_error, r2_score):
    print(f.__name__, repr(f(yr, pr)))
Y2 = np.stack([yr, 2 * yr - 1], axis=1); P2 = np.stack([pr, 1.5 * pr], axis=1)
for f in (mean_squared_error, mean_absolute_error, r2_score):
    print(f.__name__, "2 targets", repr(f(Y2, P2)))
print("r2 constant exact", repr(r2_score([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])))
print("r2 constant off", repr(r2_score([3.0, 3.0, 3.0], [3.0, 2.0, 3.0])))
print("r2 one row", repr(r2_score([3.0], [2.0])))
