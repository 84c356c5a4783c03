import torch
import torch.nn as nn

from whipnb.tasks.task2.data import make_data

torch.manual_seed(0)
X_train, y_train, X_val, y_val = make_data()


def bce_loss(logits, targets):
    """Binary cross-entropy, written out by hand."""
    pred = torch.sigmoid(logits)
    return -(targets * torch.log(pred) + (1 - targets) * torch.log(1 - pred)).mean()


model = nn.Sequential(
    nn.Linear(2, 32), nn.ReLU(),
    nn.Linear(32, 32), nn.ReLU(),
    nn.Linear(32, 1),
)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

losses = []
for epoch in range(30):
    order = torch.randperm(len(X_train))
    epoch_loss = 0.0
    for start in range(0, len(X_train), 64):
        batch = order[start:start + 64]
        optimizer.zero_grad()
        logits = model(X_train[batch]).squeeze(1)
        loss = bce_loss(logits, y_train[batch])
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(batch)
    losses.append(epoch_loss / len(X_train))

with torch.no_grad():
    val_pred = torch.sigmoid(model(X_val).squeeze(1)) > 0.5
    val_acc = (val_pred.float() == y_val).float().mean().item()

print(f"LOSSES:{[round(value, 4) for value in losses]}")
print(f"VAL_ACC:{val_acc:.4f}")
